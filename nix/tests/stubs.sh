#!/usr/bin/env bash
# The stand-ins of nix/tests/stubs are as strict as the real nixpkgs, crane and fenix at the
# locked revisions: each is given a wrong argument here and must fail the way the real function
# does (the error texts are the real ones; each stand-in names the file and revision it mirrors).
# Then the flake itself is looked at through them: crane's effective defaults and warnings.
#
# Prints one line per check and `N passed, M failed`; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
. nix/tests/lib.sh

# ev EXPR: EXPR evaluated (strict, JSON) with the stand-ins in scope as pkgs, lib, craneLib,
# fenix, and the flake's NixOS module as `module` (its `self` only has empty packages).
S=$PWD/nix/tests/stubs
prelude="let
  np = (import $S/nixpkgs/flake.nix).outputs { self = null; };
  pkgs = np.legacyPackages.x86_64-linux;
  lib = pkgs.lib;
  craneLib = ((import $S/crane/flake.nix).outputs { self = null; }).mkLib pkgs;
  fenix = ((import $S/fenix/flake.nix).outputs { self = null; }).packages.x86_64-linux;
  module = import $PWD/nix/nixos-module.nix { self.packages.x86_64-linux.default = pkgs.redis; };
  pkg = craneLib.buildPackage { src = lib.fileset.toSource { root = $PWD; fileset = $PWD/Cargo.toml; }; pname = \"omnia-x\"; cargoArtifacts = null; meta.mainProgram = \"omnia\"; };
  # The module evaluated as NixOS would, with \`def\` (a module) on top.
  node = def: (lib.evalModules { modules = [ np.lib.nixosOptions module def ]; moduleArgs = { inherit pkgs; }; }).config;
  # A VM test's node with services.omnia set to \`cfg\` (evaluating its derivation evaluates the
  # node's units, as building the system would).
  omnia = cfg: (pkgs.testers.runNixOSTest { name = \"x\"; testScript = \"\"; nodes.machine = { imports = [ module ]; services.omnia = { enable = true; package = pkg; component = $PWD/tests/guests/bin/kv-http.wasm; } // cfg; }; }).drvPath;
in "
ev() { nix-instantiate --eval --strict --json -E "$prelude $1"; }

echo "== crane (ipetkov/crane v0.23.4)"
check "buildPackage: doCheck defaults to true (lib/buildPackage.nix)" true \
  ev '(craneLib.buildPackage { src = ./.; pname = "x"; version = "1"; cargoArtifacts = null; }).doCheck'
check "buildDepsOnly: cargo check --all-targets when doCheck (lib/buildDepsOnly.nix)" '[true,false]' \
  ev 'map (d: lib.hasPrefix "cargoWithProfile check --locked --all-targets" (craneLib.buildDepsOnly ({ src = ./.; pname = "x"; version = "1"; } // d)).stubCommands.build) [ { } { doCheck = false; } ]'
fails_with "cargoClippy: cargoArtifacts is required (lib/cargoClippy.nix)" \
  "called without required argument 'cargoArtifacts'" \
  ev '(craneLib.cargoClippy { src = ./.; pname = "x"; version = "1"; }).drvPath'
fails_with "cargoNextest: partitions must be at least 1 (lib/cargoNextest.nix)" \
  "paritions must be at least 1 or greater" \
  ev '(craneLib.cargoNextest { src = ./.; pname = "x"; version = "1"; cargoArtifacts = null; partitions = 0; }).drvPath'
check "cargoFmt without pname on a virtual workspace: crane's placeholder warning (lib/crateNameFromCargoToml.nix)" '"cargo-package"' \
  ev "let f = craneLib.cargoFmt { src = $PWD; }; in if builtins.length f.stubWarnings == 1 then f.pname else f.stubWarnings"
fails_with "cargoFmt without pname, NIX_ABORT_ON_WARN=1: the warning aborts" \
  'crane will use a placeholder value since `name` cannot be found in' \
  env NIX_ABORT_ON_WARN=1 nix-instantiate --eval --strict --json -E "$prelude (craneLib.cargoFmt { src = $PWD; }).name"
fails_with "buildPackage without pname and a src with no Cargo.toml (lib/crateNameFromCargoToml.nix)" \
  "unable to infer crate name and version" \
  ev "(craneLib.buildPackage { src = $PWD/nix; cargoArtifacts = null; }).name"

echo "== nixpkgs lib (nixpkgs.lib b04b7722, lib/meta.nix, lib/fileset, lib/options.nix, lib/modules.nix, lib/types.nix)"
check "getExe reads meta.mainProgram" true \
  ev 'lib.hasSuffix "/bin/omnia" (lib.getExe pkg)'
fails_with "getExe without meta.mainProgram warns (NIX_ABORT_ON_WARN=1 aborts)" \
  'does not have the meta.mainProgram attribute' \
  env NIX_ABORT_ON_WARN=1 nix-instantiate --eval --strict --json -E "$prelude lib.getExe pkgs.redis"
fails_with "getExe' of a non-derivation" \
  "lib.meta.getExe': The first argument is of type set, but it should be a derivation instead." \
  ev 'lib.getExe { meta.mainProgram = "x"; }'
fails_with "fileset.unions: a path that does not exist" \
  "lib.fileset.unions: Element 1 ($PWD/no-such-dir) is a path that does not exist." \
  ev "lib.fileset.unions [ $PWD/Cargo.toml $PWD/no-such-dir ]"
fails_with "fileset.toSource: a file set outside root" \
  "lib.fileset.toSource: \`fileset\` could contain files in $PWD, which is not under the \`root\` ($PWD/nix)" \
  ev "(lib.fileset.toSource { root = $PWD/nix; fileset = $PWD/Cargo.toml; }).origSrc"
fails_with "fileset.toSource: a closed argument set" "called with unexpected argument 'filter'" \
  ev "(lib.fileset.toSource { root = $PWD; fileset = $PWD/Cargo.toml; filter = null; }).origSrc"
fails_with "fileset.fileFilter: the predicate must take extra attributes" \
  'must be able to handle extra attributes for future compatibility' \
  ev "(lib.fileset.toSource { root = $PWD; fileset = lib.fileset.fileFilter ({ name, hasExt, type }: hasExt \"rs\") $PWD; }).origSrc"
fails_with "mkOption: a closed argument set" "called with unexpected argument 'defualt'" \
  ev 'lib.mkOption { type = lib.types.str; defualt = ""; }'
check "module: a node with right settings evaluates (so the failures below come from the wrong values)" true \
  ev 'builtins.isString (omnia { listen = "0.0.0.0:8080"; environment.OMNIA_X = "1"; after = [ "redis.service" ]; })'
fails_with "module: a value of the wrong type (types.str)" \
  "A definition for option \`services.omnia.listen' is not of type \`string'." \
  ev 'omnia { listen = 8080; }'
fails_with "module: types.attrsOf types.str checks each value" \
  "A definition for option \`services.omnia.environment.OMNIA_X' is not of type \`string'." \
  ev 'omnia { environment.OMNIA_X = 1; }'
fails_with "module: types.nullOr types.path" \
  "A definition for option \`services.omnia.environmentFile' is not of type \`null or absolute path'." \
  ev 'omnia { environmentFile = "relative.env"; }'
fails_with "module: types.listOf types.str" \
  "A definition for option \`services.omnia.after' is not of type \`list of string'." \
  ev 'omnia { after = "redis.service"; }'
fails_with "module: an undeclared option" "The option \`services.omnia.lissten' does not exist." \
  ev 'omnia { lissten = "0.0.0.0:80"; }'
fails_with "module: mkIf with a non-Boolean condition" "‘mkIf’ called with a non-Boolean condition" \
  ev '(node { services.omnia = { enable = lib.mkIf "yes" true; package = pkg; component = ./.; }; }).systemd.services.omnia.description'
fails_with "module: a required option left unset" \
  "The option \`services.omnia.component' was accessed but has no value defined. Try setting the option." \
  ev '(node { services.omnia = { enable = true; package = pkg; }; }).systemd.services.omnia.serviceConfig.ExecStart'

echo "== the NixOS module: a new component is a reload, not a restart (stand-in NixOS options)"
# The module's settings for a component `c` (app c), and for an application: examples/app.
app="(c: node { services.omnia = { enable = true; package = pkg; component = c; }; })"
dir=$PWD/examples/app
check "module: an application (a directory) runs as /etc/omnia/app" true \
  ev "lib.hasSuffix \"/bin/omnia run /etc/omnia/app\" ($app $dir).systemd.services.omnia.serviceConfig.ExecStart"
check "module: environment.etc.\"omnia/app\" links the directory (a symlink), and nothing else" true \
  ev "let etc = ($app $dir).environment.etc; in builtins.attrNames etc == [ \"omnia/app\" ]
      && etc.\"omnia/app\".source == $dir && etc.\"omnia/app\".target == \"omnia/app\" && etc.\"omnia/app\".mode == \"symlink\""
check "module: the component is a reload trigger of the unit" true \
  ev "builtins.elem $dir ($app $dir).systemd.services.omnia.reloadTriggers"
check "module: ExecReload sends SIGHUP to the main process" true \
  ev "builtins.match \"/nix/store/[a-z0-9]{32}-coreutils/bin/kill -HUP [\$]MAINPID\" ($app $dir).systemd.services.omnia.serviceConfig.ExecReload != null"
check "module: a .bin is linked as app.bin (here a path outside the store), a .wasm as app.wasm" \
  '[["omnia/app.bin","/var/lib/omnia-app/kv-http.bin","run /etc/omnia/app.bin"],["omnia/app.wasm","'$PWD'/tests/guests/bin/kv-http.wasm","run /etc/omnia/app.wasm"]]' \
  ev "map (c: let n = $app c; name = builtins.head (builtins.attrNames n.environment.etc); in
      [ name (toString n.environment.etc.\${name}.source) (builtins.head (builtins.match \".*/bin/omnia (run .*)\" n.systemd.services.omnia.serviceConfig.ExecStart)) ])
      [ \"/var/lib/omnia-app/kv-http.bin\" $PWD/tests/guests/bin/kv-http.wasm ]"
fails_with "module: a lone omnia.toml is refused (a failed assertion fails the system)" \
  "Failed assertions:
- services.omnia.component is a manifest ($dir/omnia.toml): give the directory holding it" \
  ev "omnia { component = $dir/omnia.toml; }"
fails_with "environment.etc: source is types.path (an absolute path)" \
  "A definition for option \`environment.etc.x.source' is not of type \`absolute path'." \
  ev '(node { environment.etc.x.source = "relative/file"; }).environment.etc.x.source'
check "environment.etc: target defaults to the name; text is null, mode symlink, user +0" '["a/b",null,"symlink","+0"]' \
  ev 'let e = (node { environment.etc."a/b".source = /x; }).environment.etc."a/b"; in [ e.target e.text e.mode e.user ]'

echo "== nixpkgs builders (dockerTools, testers.runNixOSTest, runCommand)"
fails_with "buildLayeredImage: a closed argument set" "called with unexpected argument 'entrypoint'" \
  ev '(pkgs.dockerTools.buildLayeredImage { name = "x"; entrypoint = [ "/bin/x" ]; }).drvPath'
fails_with "buildLayeredImage: maxLayers > 1" "must be greather than 1 (current value: 1)" \
  ev '(pkgs.dockerTools.buildLayeredImage { name = "x"; maxLayers = 1; }).drvPath'
fails_with "runNixOSTest: the test is a module (undeclared option)" "The option \`nodez' does not exist." \
  ev '(pkgs.testers.runNixOSTest { name = "x"; nodez.machine = { }; testScript = ""; }).drvPath'
fails_with "runNixOSTest: each node is a NixOS configuration" \
  "A definition for option \`services.nats.enable' is not of type \`boolean'." \
  ev '(pkgs.testers.runNixOSTest { name = "x"; nodes.machine = { services.nats.enable = "yes"; }; testScript = ""; }).drvPath'
fails_with "runNixOSTest: testScript is required" \
  "The option \`testScript' was accessed but has no value defined. Try setting the option." \
  ev '(pkgs.testers.runNixOSTest { name = "x"; nodes.machine = { }; }).drvPath'
fails_with "runCommand runs its script (a failing one fails the build)" "failed with exit code 3" \
  nix-build --no-out-link -E "$prelude pkgs.runCommand \"stubs-sh-fails-$$\" { } \"exit 3\""

echo "== fenix (nix-community/fenix e8a633e2)"
check "stable is Rust 1.95.0 of 2026-04-16 (data/stable.json)" '["1.95.0","2026-04-16"]' \
  ev '[ fenix.stable.rustc.unwrapped.stubRustVersion fenix.stable.rustc.unwrapped.version ]'
check "fenix's stable is rust-toolchain.toml's channel" true \
  ev "fenix.stable.rustc.unwrapped.stubRustVersion == (builtins.fromTOML (builtins.readFile $PWD/rust-toolchain.toml)).toolchain.channel"
fails_with "a component stable lacks" "attribute 'clipy' missing" \
  ev 'fenix.stable.clipy.name'
# A fenix whose stable is another Rust: the flake's toolchain check must fail to build.
bumped=$(mktemp -d)
cp "$S/fenix/flake.nix" "$bumped/" && sed 's/1\.95\.0/1.96.0/g' "$S/fenix/stable.json" > "$bumped/stable.json"
fails_with "a fenix bump (stable 1.96.0) fails the flake's toolchain check" "rust-toolchain.toml pins 1.95.0" \
  nix build --no-link .#checks.x86_64-linux.toolchain --override-input nixpkgs "path:$S/nixpkgs" \
  --override-input crane "path:$S/crane" --override-input fenix "path:$bumped"
rm -r "$bumped"

echo "== the flake, through the stand-ins"
O=(--override-input nixpkgs "path:$S/nixpkgs" --override-input crane "path:$S/crane" --override-input fenix "path:$S/fenix")
check "checks.tests runs the tests (crane's effective doCheck)" true \
  nix eval --json .#checks.x86_64-linux.tests.doCheck "${O[@]}"
check "every profile's dependencies are checked with --all-targets (buildDepsOnly's doCheck)" '[]' \
  nix eval --json .#packages.x86_64-linux "${O[@]}" --apply 'ps: builtins.filter (n: builtins.substring 0 6 n == "omnia-" && builtins.match ".*cargoWithProfile check [^\n]*--all-targets.*" ps.${n}.cargoArtifacts.stubCommands.build == null) (builtins.attrNames ps)'
check "no crane warning (placeholder names) in checks and packages" '[]' \
  nix eval --json .#checks.x86_64-linux "${O[@]}" --apply 'cs: builtins.filter (n: (cs.${n}.stubWarnings or [ ]) != [ ]) (builtins.attrNames cs)'
# --impure: in pure evaluation getEnv gives "" and lib.warn cannot see NIX_ABORT_ON_WARN (as with the real lib).
if out=$(NIX_ABORT_ON_WARN=1 nix flake check --impure "${O[@]}" 2>&1); then ok "no warning in nix flake check (NIX_ABORT_ON_WARN=1, stand-ins)"; else bad "no warning in nix flake check (NIX_ABORT_ON_WARN=1, stand-ins)" "$(echo "$out" | grep -v '^warning' | tail -5)"; fi

finish
