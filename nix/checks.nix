# `nix flake check`: formatting, clippy per profile (on that profile's dependencies), the test
# suite, the profile library's unit tests, and the toolchain pin. VM tests are added in
# per-system.nix.
{ pkgs, craneLib, build, toolchain, runtimes, profiles, byName }:
let
  unit = import ./tests/unit.nix;
in
byName (p: { name = p.clippyName; value = runtimes.${p.name}.clippy; })
// {
  fmt = craneLib.cargoFmt { inherit (build) src version; pname = "omnia"; };

  # The workspace's tests with real redis-server and nats-server processes (the harness starts
  # them on loopback). The polyglot guests need PyPI and npm, which the sandbox does not reach.
  # `doCheck` is crane's default (true): nextest and the AOT build below run in the check phase.
  tests = craneLib.cargoNextest (build.common // {
    cargoArtifacts = craneLib.buildDepsOnly build.common;
    nativeCheckInputs = [ pkgs.redis pkgs.nats-server ];
    # (The Rust/Nix agreement test needs a Nix store, which the sandbox lacks; tests/run has it.)
    cargoNextestExtraArgs = "--workspace -E 'not binary(polyglot) and not test(rust_and_nix)'";
    preCheck = ''
      cargo build --release --locked -p omnia-cli --no-default-features --features http,keyvalue
      mkdir -p target/omnia-aot && cp target/release/omnia target/omnia-aot/omnia
    '';
  });

  # The profile library's unit tests, evaluated with the flake: a failure fails evaluation.
  nix-unit =
    if unit.failed == [ ] then
      pkgs.runCommand "nix-unit" { } "echo '${toString unit.passed} passed, 0 failed' > $out"
    else
      throw "nix/tests/unit.nix: ${builtins.toJSON unit.failed}";

  # The fenix toolchain is the one rust-toolchain.toml pins for rustup users.
  toolchain = pkgs.runCommand "toolchain-${toolchain.pinned}" { nativeBuildInputs = [ toolchain.rust ]; } ''
    rustc --version | grep -q '^rustc ${toolchain.pinned} ' || {
      echo "fenix gives $(rustc --version), rust-toolchain.toml pins ${toolchain.pinned}" >&2
      exit 1
    }
    touch $out
  '';
}
