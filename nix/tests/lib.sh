# What the Nix test tiers share (offline.sh, stubs.sh and real.sh source it): the Nix settings
# for evaluating offline, the pass and fail counts, and the two kinds of check.

# No build users and no sandbox: the stand-in checks are trivial builds, and root (without
# Debian's nix-setup-systemd) has no nixbld group to build as.
export NIX_CONFIG=$'experimental-features = nix-command flakes\nsubstituters =\nconnect-timeout = 2\nbuild-users-group =\nsandbox = false'
passed=0
failed=0
nix_err=/tmp/omnia-nix-err.$$
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/     /'; }

# check NAME EXPECTED COMMAND...: the command's stdout must equal EXPECTED.
check() {
  local name=$1 expected=$2
  shift 2
  local got
  if got=$("$@" 2>"$nix_err"); then
    if [ "$got" = "$expected" ]; then ok "$name"; else bad "$name" "expected: $expected"$'\n'"got:      $got"; fi
  else
    bad "$name" "$(tail -5 "$nix_err")"
  fi
}

# fails_with NAME NEEDLE COMMAND...: the command must fail with NEEDLE in its error.
fails_with() {
  local name=$1 needle=$2
  shift 2
  if "$@" >/dev/null 2>"$nix_err"; then
    bad "$name" "succeeded, expected an error containing: $needle"
  elif grep -qF -- "$needle" "$nix_err"; then
    ok "$name"
  else
    bad "$name" "expected an error containing: $needle"$'\n'"$(grep -v '^warning' "$nix_err" | tail -5)"
  fi
}

# finish: prints `N passed, M failed`; fails if any failed.
finish() {
  rm -f "$nix_err"
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
