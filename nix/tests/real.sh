#!/usr/bin/env bash
# The flake against the real sources, on Debian's Nix 2.8, offline: the real nixpkgs `lib`
# (modules, types, fileset), crane and fenix, with only what makes derivations replaced by
# recorders (nix/tests/real/pkgs.nix), and the NixOS module through the real `lib.evalModules`
# (nix/tests/real/nixos.nix declares the NixOS options it sets).
#
# Usage: nix/tests/real.sh DIR [--rev REV]
#   DIR   crane/, fenix/ and nixpkgs-lib/ from nix/tests/get-real-sources.sh
#   REV   evaluate that commit of this repository instead of the working tree's tracked files
#
# Prints one line per check and `N passed, M failed`; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 DIR [--rev REV]" >&2; exit 2; }
dir=$(cd "$1" && pwd) || exit 2
rev=
[ "${2:-}" = --rev ] && rev=$(git rev-parse "${3:?--rev needs a commit}")
for d in crane fenix nixpkgs-lib/lib; do
  [ -d "$dir/$d" ] || { echo "$dir/$d missing: run nix/tests/get-real-sources.sh $1" >&2; exit 2; }
done
. nix/tests/lib.sh
here=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
note() { echo "note $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/     /'; }

# The flake's source as `nix` sees a git flake: tracked files only (not target/).
if [ -n "$rev" ]; then src="builtins.fetchGit { url = $here; rev = \"$rev\"; }"; else src="builtins.fetchGit $here"; fi
prelude="let r = import $here/nix/tests/real { dir = $dir; src = $src; stubs = $here/nix/tests/stubs; };
  inherit (r) lib omnia standin profiles nixos;
  P = omnia.packages.x86_64-linux; C = omnia.checks.x86_64-linux;

  # lib.hasInfix refuses a regex with store paths in it: compare the text.
  has = s: u: lib.hasInfix (builtins.unsafeDiscardStringContext s) (builtins.unsafeDiscardStringContext u);
  # A store path without its hash (real and stand-in derivations have different hashes).
  unstore = s: let m = builtins.match \"/nix/store/[a-z0-9]{32}-(.*)\" s; in if m == null then s else \"/nix/store/...-\" + builtins.head m; in"

# ev EXPR: the JSON of EXPR (evaluated after $prelude); stderr goes to $tmp/err.
ev() { nix-instantiate --eval --strict --json "${@:2}" -E "$prelude $1" 2>"$tmp/err"; }
errtail() { grep -v -e "^warning: Git tree" -e "build-users-group" "$tmp/err" | tail -${1:-6}; }

# check NAME EXPECTED EXPR: EXPR's JSON must equal EXPECTED.
check() {
  local got
  if got=$(ev "$3"); then
    if [ "$got" = "$2" ]; then ok "$1"; else bad "$1" "expected: $2"$'\n'"got:      $got"; fi
  else
    bad "$1" "$(errtail)"
  fi
}

# agree NAME EXPR: EXPR must give the same with x = the real flake (isReal = true) and with
# x = the stand-in flake (isReal = false).
agree() {
  local real standin
  real=$(ev "let x = omnia; isReal = true; in $2") || { bad "$1" "real: $(errtail)"; return; }
  standin=$(ev "let x = standin; isReal = false; in $2") || { bad "$1" "stand-in: $(errtail)"; return; }
  if [ "$real" = "$standin" ]; then ok "$1"; else bad "$1" "real:     $real"$'\n'"stand-in: $standin"; fi
}

echo "== the sources (nix/tests/get-real-sources.sh)"
sed 's/^/     /' "$dir/REVISIONS" 2>/dev/null
for input in crane fenix; do
  want=$(python3 -c "import json; print(json.load(open('flake.lock'))['nodes']['$input']['locked']['rev'])")
  if grep -q "^$input $want " "$dir/REVISIONS" 2>/dev/null; then ok "$input is the revision flake.lock pins"
  else bad "$input is the revision flake.lock pins" "flake.lock: $want; $dir/REVISIONS: $(grep "^$input " "$dir/REVISIONS" 2>/dev/null)"; fi
done
check "the real lib $(cat "$dir/nixpkgs-lib/lib/.version") evaluates on Nix $(nix --version | cut -d' ' -f3)" \
  true 'lib.versionAtLeast (lib.versions.majorMinor lib.version) "25.11"'   # crane lib/default.nix's minimum

echo "== crane's own defaults, as Omnia calls them"
# crane v0.23.4 cargoNextest.nix: `doCheck = args.doCheck or true`; the tests run in the check phase.
check "checks.tests: nextest runs (doCheck, cargo nextest run in the check phase)" true \
  'C.tests.drvArgs.doCheck && lib.hasInfix "cargo nextest run" C.tests.drvArgs.checkPhase'
# buildDepsOnly.nix: cargoCheckExtraArgs defaults to --all-targets only when doCheck (default true).
check "checks.tests: its dependencies include the dev-dependencies (cargo check --all-targets)" true \
  'lib.hasInfix "cargoWithProfile check --locked --all-targets" C.tests.drvArgs.cargoArtifacts.drvArgs.buildPhase'
check "checks.tests: its preCheck builds the AOT binary the tests use" true \
  'let c = C.tests.drvArgs; in lib.hasInfix "runHook preCheck" c.checkPhase && lib.hasInfix "cargo build --release" c.preCheck'
# crateNameFromCargoToml.nix: a workspace root has no package.name -> placeholder + warning.
if got=$(ev 'C.fmt.name'); then
  if grep -q "placeholder" "$tmp/err"; then bad "checks.fmt: pname is set (crane warns of no placeholder)" "$got; crane: $(grep -m1 placeholder "$tmp/err")"
  elif [ "$got" = '"omnia-fmt-0.1.0"' ]; then ok "checks.fmt: pname is set (crane warns of no placeholder)"
  else bad "checks.fmt: pname is set (crane warns of no placeholder)" "got: $got"; fi
else bad "checks.fmt: pname is set (crane warns of no placeholder)" "$(errtail)"; fi
check "checks.fmt: cargo fmt -- --check on the whole workspace" true \
  'lib.hasInfix "cargo fmt  -- --check" C.fmt.drvArgs.buildPhase'
if ev 'map (n: C.${n}.name) (builtins.attrNames C) ++ map (n: P.${n}.name) (builtins.attrNames P)' >/dev/null && ! grep -q "evaluation warning" "$tmp/err"; then
  ok "no output draws a warning from crane or lib"
else bad "no output draws a warning from crane or lib" "$(grep -A2 "evaluation warning" "$tmp/err" | head -6)"; fi

echo "== cargo flags per profile (the real crane commands)"
profiles=$(ev 'builtins.attrNames profiles' | tr -d '[]"' | tr ',' ' ')
for p in $profiles; do
  flags=$(ev "profiles.$p.cargoExtraArgs" | tr -d '"')
  check "omnia-$p: deps run cargo check --all-targets and cargo build, with the profile's flags" true \
    "let b = P.omnia-$p.drvArgs.cargoArtifacts.drvArgs.buildPhase; in
     lib.hasInfix \"cargoWithProfile check $flags --all-targets\n\" b && lib.hasInfix \"cargoWithProfile build $flags \" b"
  check "omnia-$p: the package builds with the same flags on those deps, and runs no tests" true \
    "let a = P.omnia-$p.drvArgs; in
     lib.hasInfix \"cargoWithProfile build --message-format json-render-diagnostics $flags \" a.buildPhase
     && a.doCheck == false && a.cargoArtifacts.drvPath == P.omnia-$p.drvArgs.cargoArtifacts.drvPath"
  check "clippy-$p: cargo clippy with the same flags, on the package's deps" true \
    "let a = C.clippy-$p.drvArgs; in
     lib.hasInfix \"cargoWithProfile clippy $flags --all-targets -- --deny warnings\" a.buildPhase
     && a.cargoArtifacts.drvPath == P.omnia-$p.drvArgs.cargoArtifacts.drvPath"
  check "omnia-$p: name, version, main program and OMNIA_PROFILE" "[\"omnia-$p-0.1.0\",\"omnia\",\"$p\"]" \
    "[ P.omnia-$p.name P.omnia-$p.meta.mainProgram P.omnia-$p.drvArgs.OMNIA_PROFILE ]"
done
check "every cargo derivation uses fenix's toolchain (crane's overrideToolchain)" true \
  'builtins.all (d: builtins.any (i: (i.name or "") == "rust-mixed") d.drvArgs.nativeBuildInputs)
    [ P.omnia-full P.omnia-full.drvArgs.cargoArtifacts C.clippy-full C.tests C.fmt ]'
check "fenix's stable at the locked revision is rust-toolchain.toml's channel" true \
  'let t = C.toolchain.drvArgs.nativeBuildInputs; rustc = builtins.head (builtins.filter (p: lib.hasPrefix "rust-stable-with-std" p.name) (builtins.head t).drvArgs.paths);
       pinned = (builtins.fromTOML (builtins.readFile (omnia.outPath + "/rust-toolchain.toml"))).toolchain.channel;
   in builtins.any (c: lib.hasInfix "/rustc-${pinned}-x86_64-unknown-linux-gnu.tar" c.drvArgs.src.drvArgs.url) rustc.drvArgs.paths'

echo "== the source (real lib.fileset)"
# (--eval alone is read-only: the path would be computed but not written to the store.)
if s=$(ev '"${P.omnia-full.drvArgs.src}"' --read-write-mode | tr -d '"') && [ -d "$s" ]; then
  missing=
  for f in Cargo.toml Cargo.lock rust-toolchain.toml profiles crates/omnia-cli/capabilities.toml tests/guests/bin; do [ -e "$s/$f" ] || missing="$missing $f"; done
  [ -n "$(find "$s" -name '*.wit' | head -1)" ] || missing="$missing *.wit"
  [ -e "$s/target" ] && missing="$missing (target/ is in it)"
  if [ -z "$missing" ]; then ok "src has the Cargo files, WIT, guests, profiles and capabilities, and no target/ ($(find "$s" -type f | wc -l) files)"
  else bad "src has the Cargo files, WIT, guests, profiles and capabilities, and no target/" "missing:$missing"; fi
else bad "src has the Cargo files, WIT, guests, profiles and capabilities, and no target/" "$(errtail)"; fi

echo "== real and stand-in flakes give the same (what both read)"
agree "package names" 'builtins.attrNames x.packages.x86_64-linux'
agree "check names" 'builtins.attrNames x.checks.x86_64-linux'
check "check names are the profile library's" true 'builtins.attrNames C == builtins.sort (a: b: a < b) omnia.lib.outputNames.checks'
agree "app programs (by name)" 'lib.mapAttrs (_: a: builtins.baseNameOf a.program) x.apps.x86_64-linux'
for p in $profiles; do
  agree "oci-$p: image name, tag, created and config" \
    "let a = x.packages.x86_64-linux.oci-$p.drvArgs or x.packages.x86_64-linux.oci-$p.stubArgs; in { inherit (a) name tag created config; }"
  check "oci-$p: the config is the profile's (plus version and revision)" "$(ev "profiles.$p.image")" \
    "let c = P.oci-$p.drvArgs.config; in c // { Labels = removeAttrs c.Labels [ \"org.opencontainers.image.version\" \"org.opencontainers.image.revision\" ]; }"
done
vms=$(ev 'builtins.filter (lib.hasPrefix "vm-") (builtins.attrNames C)' | tr -d '[]"' | tr ',' ' ')
for vm in $vms; do
  # The values offline.sh reads from a VM test node, through the real module system here.
  agree "$vm: the node's services and the omnia settings" \
    "let a = x.checks.x86_64-linux.$vm.drvArgs or x.checks.x86_64-linux.$vm.stubArgs;
         m = if isReal then (nixos.eval [ a.nodes.machine ]).config else a.nodes.machine { pkgs = r.pkgs; };
     in { redis = m.services.redis.servers.\"\".enable; nats = m.services.nats.enable;
          inherit (m.services.omnia) enable listen after environment; component = unstore (toString m.services.omnia.component);
          package = m.services.omnia.package.drvPath == x.packages.x86_64-linux.omnia-${vm#vm-}.drvPath; }"
done

echo "== the NixOS module through the real lib.evalModules"
# The README's example, as written there (a flake calling nixpkgs.lib.nixosSystem).
python3 - README.md "$tmp/example.nix" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
start = text.index("The NixOS module runs one component")
block = re.search(r"```nix\n(.*?)```", text[start:], re.S).group(1)
open(sys.argv[2], "w").write(block)
EOF
: >"$tmp/app.bin"
ex="(import $tmp/example.nix).outputs { nixpkgs.lib.nixosSystem = { system, modules }: nixos.eval modules; omnia = omnia; }"
if ev "($ex).nixosConfigurations.web.units.omnia" >"$tmp/unit.json"; then
  ok "the README's example evaluates"
else bad "the README's example evaluates" "$(errtail)"; fi
# unit_check NAME PYTHON: PYTHON asserts on u (section -> [(key, value)]) and prints problems.
unit_check() {
  local out
  if out=$(python3 - "$tmp/unit.json" "$2" <<'EOF'
import json, sys, re
text = json.load(open(sys.argv[1]))
u, sec = {}, None
for line in text.splitlines():
    if line.startswith("["): sec = line.strip("[]"); u.setdefault(sec, [])
    elif "=" in line: k, v = line.split("=", 1); u[sec].append((k, v))
def get(s, k): return [v for (kk, v) in u.get(s, []) if kk == k]
def one(s, k): v = get(s, k); return v[0] if len(v) == 1 else None
env = {json.loads(v).split("=", 1)[0]: json.loads(v).split("=", 1)[1] for v in get("Service", "Environment")}
problems = []
exec(sys.argv[2])
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
  ); then ok "$1"; else bad "$1" "$out"; fi
}
unit_check "unit: ExecStart runs the profile's omnia on /etc/omnia/app.bin (the same path in every generation)" '
if not re.fullmatch(r"/nix/store/[a-z0-9]{32}-omnia-http-kv-0\.1\.0/bin/omnia run /etc/omnia/app\.bin", one("Service", "ExecStart") or ""):
    problems.append("ExecStart=%s" % get("Service", "ExecStart"))'
unit_check "unit: ExecReload sends SIGHUP to the main process (systemctl reload omnia)" '
if not re.fullmatch(r"/nix/store/[a-z0-9]{32}-coreutils/bin/kill -HUP \$MAINPID", one("Service", "ExecReload") or ""):
    problems.append("ExecReload=%s" % get("Service", "ExecReload"))'
unit_check "unit: a reload trigger (X-Reload-Triggers), and no X-ReloadIfChanged (a changed unit restarts)" '
if not re.fullmatch(r"/nix/store/[a-z0-9]{32}-X-Reload-Triggers-omnia", one("Unit", "X-Reload-Triggers") or ""):
    problems.append("X-Reload-Triggers=%s" % get("Unit", "X-Reload-Triggers"))
for k in ("X-ReloadIfChanged", "X-RestartIfChanged"):
    if get("Service", k): problems.append("%s=%s" % (k, get("Service", k)))'
check "the README's example links app.bin's store copy at /etc/omnia/app.bin (a symlink), and nothing else" true \
  "($ex).nixosConfigurations.web.etc == { \"omnia/app.bin\" = { source = \"\${$tmp/app.bin}\"; mode = \"symlink\"; }; }"
unit_check "unit: runs as an unprivileged user (DynamicUser, or User= a system user)" '
if one("Service", "DynamicUser") != "true" and not one("Service", "User"):
    problems.append("DynamicUser=%s User=%s" % (get("Service", "DynamicUser"), get("Service", "User")))'
unit_check "unit: hardening" '
want = {"NoNewPrivileges": "true", "ProtectSystem": "strict", "ProtectHome": "true", "PrivateTmp": "true",
        "PrivateDevices": "true", "CapabilityBoundingSet": "", "ProtectKernelTunables": "true",
        "ProtectKernelModules": "true", "ProtectControlGroups": "true", "RestrictSUIDSGID": "true",
        "RestrictNamespaces": "true", "LockPersonality": "true", "SystemCallFilter": "@system-service"}
for k, v in want.items():
    if one("Service", k) != v: problems.append("%s=%s, want %r" % (k, get("Service", k), v))
if set(get("Service", "RestrictAddressFamilies")) - {"AF_INET", "AF_INET6", "AF_UNIX"}:
    problems.append("RestrictAddressFamilies=%s" % get("Service", "RestrictAddressFamilies"))
if one("Service", "MemoryDenyWriteExecute") == "true":
    problems.append("MemoryDenyWriteExecute=true breaks wasmtime")'
unit_check "unit: the environment file holds the secrets" '
if get("Service", "EnvironmentFile") != ["/run/secrets/omnia.env"]: problems.append("EnvironmentFile=%s" % get("Service", "EnvironmentFile"))'
unit_check "unit: settings in the environment" '
want = {"OMNIA_HTTP_ADDR": "0.0.0.0:8080", "OMNIA_ADMIN_ADDR": "127.0.0.1:9090", "REDIS_URL": "redis://127.0.0.1:6379", "OMNIA_REDIS_PREFIX": "web:"}
for k, v in want.items():
    if env.get(k) != v: problems.append("%s=%r, want %r" % (k, env.get(k), v))'
unit_check "unit: restarts on failure" '
if one("Service", "Restart") not in ("on-failure", "always"): problems.append("Restart=%s" % get("Service", "Restart"))'
unit_check "unit: keeps restarting until its backend listens (no start limit reached)" '
def secs(s):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?", s.strip())
    n = float(m.group(1)); unit = m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * 60 if unit in ("min", "m") else n
interval = secs(one("Unit", "StartLimitIntervalSec") or "10s")   # systemd defaults
burst = int(one("Unit", "StartLimitBurst") or 5)
restart = secs(one("Service", "RestartSec") or "100ms")
if interval != 0 and restart * burst <= interval:
    problems.append("%d starts within %ss (RestartSec=%ss) hit the start limit: systemd gives up" % (burst, interval, restart))'
unit_check "unit: after and wanting the backend and the network, started at boot" '
for k in ("After", "Wants"):
    v = (one("Unit", k) or "").split()
    for w in ("network-online.target", "redis.service"):
        if w not in v: problems.append("%s=%s lacks %s" % (k, v, w))
if get("Install", "WantedBy") != ["multi-user.target"]: problems.append("WantedBy=%s" % get("Install", "WantedBy"))'
# switch-to-configuration (switch-to-configuration-ng's compare_units) reloads a unit whose file
# differs from the running one's in X-Reload-Triggers alone, and restarts it for any other difference.
mkdir -p "$tmp/v1" "$tmp/v2" "$tmp/dir"
echo one >"$tmp/v1/app.bin"; echo two >"$tmp/v2/app.bin"; : >"$tmp/dir/omnia.toml"
check "a new component changes only X-Reload-Triggers (a reload); a new package changes ExecStart (a restart)" \
  '{"component":["X-Reload-Triggers"],"package":["ExecStart"]}' \
  "let unit = c: p: (nixos.eval [ omnia.nixosModules.default { services.omnia = { enable = true; component = c; package = p; }; } ]).units.omnia;
       keys = a: b: let lb = lib.splitString \"\n\" b; in map (l: builtins.head (lib.splitString \"=\" l)) (builtins.filter (l: !(builtins.elem l lb)) (lib.splitString \"\n\" a));
   in { component = keys (unit $tmp/v1/app.bin P.omnia-full) (unit $tmp/v2/app.bin P.omnia-full);
        package = keys (unit $tmp/v1/app.bin P.omnia-full) (unit $tmp/v1/app.bin P.omnia-http-kv); }"
check "an application (a directory) runs as /etc/omnia/app, linked to the directory's store copy, its reload trigger" true \
  "let e = nixos.eval [ omnia.nixosModules.default { services.omnia = { enable = true; component = $tmp/dir; }; } ]; in
   e.failedAssertions == [ ] && e.etc == { \"omnia/app\" = { source = \"\${$tmp/dir}\"; mode = \"symlink\"; }; }
   && lib.hasSuffix \"/bin/omnia run /etc/omnia/app\" e.config.systemd.services.omnia.serviceConfig.ExecStart
   && e.config.systemd.services.omnia.reloadTriggers == [ $tmp/dir ]"
check "a lone omnia.toml fails an assertion that asks for its directory" true \
  "let e = nixos.eval [ omnia.nixosModules.default { services.omnia = { enable = true; component = $tmp/dir/omnia.toml; }; } ]; in
   builtins.length e.failedAssertions == 1 && lib.hasPrefix \"services.omnia.component is a manifest ($tmp/dir/omnia.toml): give the directory holding it\" (builtins.head e.failedAssertions)"
check "defaults: packages.default, 127.0.0.1:8080, no environment file" true \
  "let u = (nixos.eval [ omnia.nixosModules.default { services.omnia = { enable = true; component = $tmp/app.bin; }; } ]).units.omnia; in
   lib.hasInfix \"-omnia-full-0.1.0/bin/omnia run \" u && lib.hasInfix \"OMNIA_HTTP_ADDR=127.0.0.1:8080\" u && !(lib.hasInfix \"EnvironmentFile\" u)"
check "adminListen = null turns the admin endpoints off" false \
  "lib.hasInfix \"OMNIA_ADMIN_ADDR\" (nixos.eval [ omnia.nixosModules.default { services.omnia = { enable = true; component = $tmp/app.bin; adminListen = null; }; } ]).units.omnia"
check "disabled, the module defines no service" '[]' \
  "builtins.attrNames (nixos.eval [ omnia.nixosModules.default ]).units"
if ev "(nixos.eval [ omnia.nixosModules.default { services.omnia.lisen = \"x\"; } ]).units" >/dev/null; then
  bad "the module system refuses a misspelt option" "evaluated"
elif grep -q "The option \`services.omnia.lisen' does not exist" "$tmp/err"; then ok "the module system refuses a misspelt option"
else bad "the module system refuses a misspelt option" "$(errtail)"; fi
for vm in $vms; do
  check "$vm: the node evaluates; omnia's unit runs its package on the guest's /etc link, after its backends" true \
    "let a = C.$vm.drvArgs; e = nixos.eval [ a.nodes.machine ]; o = e.config.services.omnia; u = e.units.omnia;
         after = lib.optional e.config.services.nats.enable \"nats.service\" ++ lib.optional e.config.services.redis.servers.\"\".enable \"redis.service\";
         linked = builtins.head (builtins.attrNames e.etc);
     in e.failedAssertions == [ ] && builtins.attrNames e.etc == [ linked ] && e.etc.\${linked}.source == \"\${o.component}\"
     && builtins.elem linked [ \"omnia/app.wasm\" \"omnia/app.bin\" ]
     && has \"ExecStart=\${o.package}/bin/omnia run /etc/\${linked}\n\" u
     && builtins.all (s: has \" \${s}\" (builtins.head (builtins.match \".*(After=[^\n]*).*\" u))) after"
done

rm -rf "$tmp"
finish
