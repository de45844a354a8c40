#!/usr/bin/env bash
# The Nix checks that run without the network (Debian's nix-bin 2.8 is enough), in four tiers:
#
#   1. the profile library's unit tests (nix/tests/unit.nix) and its error messages;
#   2. the flake's output names, evaluated with the real flake.lock (nothing is fetched: the
#      names come from profiles/*.toml alone);
#   3. the wiring, with stand-ins for nixpkgs, crane and fenix (nix/tests/stubs): the same cargo
#      flags for each profile's dependencies and package, the image configuration, the services
#      each VM test starts, the app paths, and `nix flake check` / `nix flake show` as a whole;
#      the stand-ins are as strict as the real functions (nix/tests/stubs.sh tests each one);
#   4. with --real DIR (or OMNIA_NIX_REAL=DIR): the same against the real nixpkgs lib, crane and
#      fenix (nix/tests/real.sh, nix/README.md); skipped, saying so, without them.
#
# Prints one line per check and `N passed, M failed`; exits non-zero if any failed.
# Real builds, real images and the VM tests need a modern Nix with the network (see README).
set -uo pipefail
cd "$(dirname "$0")/../.."
# Tier 4 (nix/README.md): the real nixpkgs lib, crane and fenix, when their sources are given.
[ "${1:-}" = --real ] && OMNIA_NIX_REAL=${2:?--real needs a directory}
. nix/tests/lib.sh

echo "== tier 1: the profile library (builtins only)"
# stdout is the JSON result; warnings on stderr are shown only if the tests did not run.
unit_err=$(mktemp)
unit=$(nix-instantiate --eval --strict --json nix/tests/unit.nix 2>"$unit_err")
unit_passed=$(echo "$unit" | python3 -c 'import json,sys; print(json.load(sys.stdin)["passed"])' 2>/dev/null || echo 0)
unit_failed=$(echo "$unit" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["failed"]))' 2>/dev/null || echo 1)
passed=$((passed + unit_passed))
failed=$((failed + unit_failed))
if [ "$unit_failed" = 0 ]; then
  echo "ok   nix/tests/unit.nix: $unit_passed passed, 0 failed"
else
  echo "FAIL nix/tests/unit.nix: $unit_passed passed, $unit_failed failed"
  { echo "$unit"; cat "$unit_err"; } | sed 's/^/     /'
fi
rm -f "$unit_err"

# Error messages name the file and the key.
bad_profiles=$(mktemp -d)
load() { nix-instantiate --eval --strict --json -E "(import $PWD/nix/lib/profiles.nix).loadProfiles $bad_profiles"; }
printf 'description = "x"\njit = true\n[capabilities]\nhttp = true\nkeyvalue = "etcd"\n' > "$bad_profiles/bad-backend.toml"
fails_with "an unknown backend names the file and the key" \
  'profiles/bad-backend.toml: capabilities.keyvalue: unknown backend "etcd"' load
rm "$bad_profiles"/*.toml
printf 'description = "x"\njit = true\ncolour = "blue"\n[capabilities]\nhttp = true\n' > "$bad_profiles/typo.toml"
fails_with "an unknown key names the file and the key" 'profiles/typo.toml: colour: unknown key' load
rm "$bad_profiles"/*.toml
printf 'description = "x"\njit = true\n[capabilities]\nhttp = false\n' > "$bad_profiles/empty.toml"
fails_with "a profile with no capability is refused" 'profiles/empty.toml: capabilities: the profile enables no capability' load
rm "$bad_profiles"/*.toml
printf 'description = "x"\njit = true\n[capabilities]\nhttp = true\n' > "$bad_profiles/Not_Kebab.toml"
fails_with "a bad profile name is refused" 'profiles/Not_Kebab.toml: the profile name "Not_Kebab" must be kebab-case' load
rm -r "$bad_profiles"

echo "== tier 2: the flake's outputs, with the real flake.lock, offline"
meta=$(nix flake metadata --json . 2>/dev/null | python3 -c 'import json,sys; print(json.dumps(sorted(json.load(sys.stdin)["locks"]["nodes"]["root"]["inputs"])).replace(" ",""))' 2>/dev/null)
if [ "$meta" = '["crane","fenix","nixpkgs"]' ]; then ok "flake.lock locks nixpkgs, crane and fenix"; else bad "flake.lock locks nixpkgs, crane and fenix" "$meta"; fi
for output in packages apps checks; do
  check "$output.x86_64-linux are the names the profiles give" \
    "$(nix eval --json ".#lib.outputNames.$output" 2>/dev/null)" \
    nix eval --json ".#$output.x86_64-linux" --apply builtins.attrNames
done
check "aarch64-linux has the same packages" \
  "$(nix eval --json .#packages.x86_64-linux --apply builtins.attrNames 2>/dev/null)" \
  nix eval --json .#packages.aarch64-linux --apply builtins.attrNames
check "nixosModules.default is a module" '"lambda"' \
  nix eval --json .#nixosModules.default --apply builtins.typeOf

echo "== tier 3: wiring, with stand-ins for nixpkgs, crane and fenix"
O=(--override-input nixpkgs "path:$PWD/nix/tests/stubs/nixpkgs"
   --override-input crane "path:$PWD/nix/tests/stubs/crane"
   --override-input fenix "path:$PWD/nix/tests/stubs/fenix")
profiles=$(nix eval --json .#lib.profiles --apply builtins.attrNames 2>/dev/null | tr -d '[]"' | tr ',' ' ')
for p in $profiles; do
  check "omnia-$p: dependencies and package built with the same cargo flags" true \
    nix eval --json ".#packages.x86_64-linux.omnia-$p.stubArgs" "${O[@]}" \
    --apply "a: a.cargoExtraArgs == a.cargoArtifacts.stubArgs.cargoExtraArgs && a.cargoExtraArgs == \"$(nix eval --raw ".#lib.profiles.$p.cargoExtraArgs" 2>/dev/null)\""
  check "omnia-$p: --version names the profile" "\"$p\"" \
    nix eval --json ".#packages.x86_64-linux.omnia-$p.stubArgs.OMNIA_PROFILE" "${O[@]}"
  check "clippy-$p reuses the profile's dependencies" true \
    nix eval --json ".#checks.x86_64-linux.clippy-$p.stubArgs" "${O[@]}" \
    --apply "a: a.cargoArtifacts.stubArgs.cargoExtraArgs == a.cargoExtraArgs"
  expected_config=$(nix eval --json ".#lib.profiles.$p.image" 2>/dev/null)
  check "oci-$p: the image configuration is the profile's (plus version and revision)" "$expected_config" \
    nix eval --json ".#packages.x86_64-linux.oci-$p.stubArgs.config" "${O[@]}" \
    --apply 'c: c // { Labels = removeAttrs c.Labels [ "org.opencontainers.image.version" "org.opencontainers.image.revision" ]; }'
  check "oci-$p: reproducible creation date and /bin/omnia" '{"created":"1970-01-01T00:00:01Z","entry":["/bin/omnia","run"]}' \
    nix eval --json ".#packages.x86_64-linux.oci-$p.stubArgs" "${O[@]}" \
    --apply 'a: { created = a.created; entry = a.config.Entrypoint; }'
  check "apps.omnia-$p runs the profile's omnia" true \
    nix eval --json ".#apps.x86_64-linux.omnia-$p" "${O[@]}" \
    --apply "a: a.type == \"app\" && builtins.match \".*-package-omnia-$p/bin/omnia\" a.program != null"
done
for vm in "full redis" "http-kv redis" "kv-nats nats" "messaging nats"; do
  set -- $vm
  case $2 in redis) want='{"nats":false,"redis":true}' ;; nats) want='{"nats":true,"redis":false}' ;; esac
  [ "$1" = full ] && want='{"nats":true,"redis":true}'
  check "vm-$1 starts the services its profile needs" "$want" \
    nix eval --json ".#checks.x86_64-linux.vm-$1.stubArgs" "${O[@]}" \
    --apply 'a: let m = a.nodes.machine { pkgs = { }; }; in { redis = m.services.redis.servers."".enable; nats = m.services.nats.enable; }'
  check "vm-$1 serves the key-value guest with the profile's package" true \
    nix eval --json ".#checks.x86_64-linux.vm-$1.stubArgs" "${O[@]}" \
    --apply "a: let m = a.nodes.machine { pkgs = { }; }; in m.services.omnia.enable && builtins.match \".*package-omnia-$1\" m.services.omnia.package.name != null"
done
check "the AOT-only VM test precompiles its guest inside the VM, with the full runtime" true \
  nix eval --json ".#checks.x86_64-linux.vm-http-kv.stubNodes.machine" "${O[@]}" \
  --apply 'm: m.services.omnia.component == "/var/lib/omnia-app/kv-http.bin"
    && builtins.match ".*-package-omnia-full/bin/omnia compile [^ ]*kv-http.wasm -o /var/lib/omnia-app/kv-http.bin.*" m.systemd.services.omnia-precompile.script != null
    && builtins.elem "omnia-precompile.service" m.services.omnia.after'
check "a JIT VM test serves the .wasm as it is" true \
  nix eval --json ".#checks.x86_64-linux.vm-full.stubArgs" "${O[@]}" \
  --apply 'a: let m = a.nodes.machine { pkgs = { }; }; in builtins.match ".*kv-http.wasm" (toString m.services.omnia.component) != null'
check "the AOT-only VM test links its precompiled guest (a path outside the store) at /etc/omnia/app.bin and runs that" true \
  nix eval --json ".#checks.x86_64-linux.vm-http-kv.stubNodes.machine" "${O[@]}" \
  --apply 'm: builtins.attrNames m.environment.etc == [ "omnia/app.bin" ]
    && m.environment.etc."omnia/app.bin".source == "/var/lib/omnia-app/kv-http.bin"
    && builtins.match "/nix/store/[^ ]*-package-omnia-http-kv/bin/omnia run /etc/omnia/app.bin" m.systemd.services.omnia.serviceConfig.ExecStart != null
    && m.systemd.services.omnia.reloadTriggers == [ "/var/lib/omnia-app/kv-http.bin" ]'
check "a JIT VM test links its .wasm at /etc/omnia/app.wasm, runs that, and reloads when it changes" true \
  nix eval --json ".#checks.x86_64-linux.vm-full.stubNodes.machine" "${O[@]}" \
  --apply 'm: let o = m.systemd.services.omnia; in builtins.attrNames m.environment.etc == [ "omnia/app.wasm" ]
    && m.environment.etc."omnia/app.wasm".source == m.services.omnia.component
    && builtins.match ".*/bin/omnia run /etc/omnia/app.wasm" o.serviceConfig.ExecStart != null
    && o.reloadTriggers == [ m.services.omnia.component ]
    && builtins.match ".*/bin/kill -HUP [$]MAINPID" o.serviceConfig.ExecReload != null'
# The line the VM tests wait for is the one crates/omnia/src/run/reload.rs logs on success.
reloaded=$(sed -n 's/.*tracing::info!("\(reloaded: {guests}[^"]*\)");.*/\1/p' crates/omnia/src/run/reload.rs | sed 's/{guests}/1/')
for vm in "full" "http-kv" "kv-nats" "messaging"; do
  script=$(nix eval --raw ".#checks.x86_64-linux.vm-$vm.stubArgs.testScript" "${O[@]}" 2>"$nix_err")
  if [ -n "$reloaded" ] && grep -qF 'machine.succeed("systemctl reload omnia.service")' <<<"$script" \
    && grep -qF "grep -F '$reloaded'" <<<"$script" && grep -qF 'incr//hits | grep -x 3' <<<"$script"; then
    ok "vm-$vm reloads omnia, waits for reload.rs's \"$reloaded\" and counts on"
  else
    bad "vm-$vm reloads omnia, waits for reload.rs's \"$reloaded\" and counts on" "$( (echo "$script" | grep -n 'reload'; tail -3 "$nix_err") | head -8)"
  fi
done
# crane's own defaults (v0.23.4): `doCheck = args.doCheck or true` in buildDepsOnly and
# cargoNextest; buildDepsOnly adds `--all-targets` (the dev-dependencies) only when it is true.
check "checks.tests runs nextest and the AOT build (crane's doCheck is not turned off)" true \
  nix eval --json ".#checks.x86_64-linux.tests.stubArgs" "${O[@]}" \
  --apply 'a: (a.doCheck or true) && (a.cargoArtifacts.stubArgs.doCheck or true)'
check "checks.fmt names its package (crane warns of a placeholder name otherwise)" '"omnia"' \
  nix eval --json ".#checks.x86_64-linux.fmt.stubArgs.pname" "${O[@]}"
for p in $profiles; do
  check "omnia-$p: dependencies include the dev-dependencies; the package runs no tests" true \
    nix eval --json ".#packages.x86_64-linux.omnia-$p.stubArgs" "${O[@]}" \
    --apply 'a: (a.cargoArtifacts.stubArgs.doCheck or true) && a.doCheck == false'
done
check "the omnia unit retries a backend that is not up yet: every 2 s, no start limit" '{"limit":0,"restart":"on-failure","sec":"2s"}' \
  nix eval --json ".#checks.x86_64-linux.vm-kv-nats.stubNodes.machine.systemd.services.omnia" "${O[@]}" \
  --apply 'u: { limit = u.startLimitIntervalSec; restart = u.serviceConfig.Restart; sec = u.serviceConfig.RestartSec; }'
check "packages.default is omnia-full" true \
  nix eval --json ".#packages.x86_64-linux" "${O[@]}" --apply 'p: p.default.name == p.omnia-full.name'
check "the toolchain check pins rust-toolchain.toml's channel" '"toolchain-1.95.0"' \
  nix eval --json ".#checks.x86_64-linux.toolchain.name" "${O[@]}"
if out=$(nix flake check "${O[@]}" 2>&1); then ok "nix flake check (stand-ins)"; else bad "nix flake check (stand-ins)" "$(echo "$out" | tail -5)"; fi
if out=$(nix flake show "${O[@]}" 2>&1); then ok "nix flake show (stand-ins)"; else bad "nix flake show (stand-ins)" "$(echo "$out" | tail -5)"; fi

echo "== stand-ins as strict as the real functions (nix/tests/stubs.sh)"
stubs_out=$(nix/tests/stubs.sh 2>&1); echo "$stubs_out" | grep -v ' passed, .* failed$'
read -r sp _ sf _ < <(echo "$stubs_out" | tail -1); passed=$((passed + ${sp:-0})); failed=$((failed + ${sf:-1}))

echo "== tier 4: the real nixpkgs lib, crane and fenix (nix/README.md)"
if [ -n "${OMNIA_NIX_REAL:-}" ]; then
  real=$(nix/tests/real.sh "$OMNIA_NIX_REAL"); echo "$real" | sed '$d'
  read -r rp _ rf _ < <(echo "$real" | tail -1); passed=$((passed + ${rp:-0})); failed=$((failed + ${rf:-1}))
else
  echo "skip (no sources: nix/tests/offline.sh --real DIR, or OMNIA_NIX_REAL=DIR; see nix/README.md)"
fi

finish
