#!/usr/bin/env bash
# Puts the sources nix/tests/real.sh evaluates into DIR (never committed to this project):
#
#   DIR/crane        ipetkov/crane at the revision flake.lock pins
#   DIR/fenix        nix-community/fenix at the revision flake.lock pins
#   DIR/nixpkgs-lib  nix-community/nixpkgs.lib (nixpkgs' lib/ alone): the last commit of its
#                    main line not newer than the locked nixpkgs (its lastModified), or
#                    $NIXPKGS_LIB_REV
#   DIR/REVISIONS    what was exported, one `name rev date` a line
#
# Usage: nix/tests/get-real-sources.sh DIR             # clones from GitHub (network)
#        nix/tests/get-real-sources.sh DIR --mirrors M # from bare mirrors M/<owner>+<repo>/repo
# Each tree is a plain `git archive` export, as a flake input would be fetched.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 DIR [--mirrors ROOT]" >&2; exit 2; }
dir=$1
mirrors=
[ "${2:-}" = --mirrors ] && mirrors=${3:?--mirrors needs a directory}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# owner repo rev lastModified, per input, from flake.lock.
locked() {
  python3 - "$1" <<'EOF'
import json, sys
l = json.load(open("flake.lock"))["nodes"][sys.argv[1]]["locked"]
print(l["owner"], l["repo"], l["rev"], l["lastModified"])
EOF
}

# The git directory of owner/repo: the mirror, or a bare clone kept in DIR/.git/.
gitdir() {
  local owner=$1 repo=$2
  if [ -n "$mirrors" ]; then
    echo "$mirrors/$owner+$repo/repo"
  else
    local g="$dir/.git/$owner+$repo"
    if [ ! -d "$g" ]; then git clone --quiet --bare "https://github.com/$owner/$repo" "$g" >&2
    else git --git-dir="$g" fetch --quiet origin '+refs/heads/*:refs/heads/*' >&2; fi
    echo "$g"
  fi
}

export_tree() {
  local name=$1 g=$2 rev=$3
  rm -rf "${dir:?}/$name"
  mkdir -p "$dir/$name"
  git --git-dir="$g" archive "$rev" | tar -x -C "$dir/$name"
  echo "$name $rev $(git --git-dir="$g" log -1 --format=%cI "$rev")" >>"$dir/REVISIONS"
}

: >"$dir/REVISIONS"
for input in crane fenix; do
  read -r owner repo rev _ < <(locked "$input")
  export_tree "$input" "$(gitdir "$owner" "$repo")" "$rev"
done

read -r _ _ nixpkgs_rev nixpkgs_time < <(locked nixpkgs)
g=$(gitdir nix-community nixpkgs.lib)
# nixpkgs.lib's main line merges nixpkgs master now and then: take the last merge made before
# the locked nixpkgs commit.
lib_rev=${NIXPKGS_LIB_REV:-$(git --git-dir="$g" log -1 --first-parent --format=%H --until="@$nixpkgs_time" HEAD)}
export_tree nixpkgs-lib "$g" "$lib_rev"
echo "nixpkgs $nixpkgs_rev $(date -u -d "@$nixpkgs_time" +%Y-%m-%dT%H:%M:%SZ) (locked; nixpkgs-lib is nearest)" >>"$dir/REVISIONS"
cat "$dir/REVISIONS"
