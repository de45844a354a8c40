# The `omnia` binary of each profile (crane), and guests precompiled for AOT-only profiles.
{ pkgs, craneLib }:
let
  lib = pkgs.lib;
  root = ../.;
  # Cargo sources plus what the build and the tests read besides Rust: WIT files, trybuild
  # expectations, the checked-in test guests, the profiles and the capability catalog.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (craneLib.fileset.commonCargoSources root)
      (lib.fileset.fileFilter (f: f.hasExt "wit" || f.hasExt "stderr" || f.hasExt "md") root)
      ../tests/guests/bin
      ../profiles
      ../crates/omnia-cli/capabilities.toml
    ];
  };
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;
  common = {
    inherit src version;
    pname = "omnia";
    strictDeps = true;
    # The host crates build a little C (ring).
    nativeBuildInputs = [ pkgs.pkg-config ];
    doCheck = false;
  };

  runtime = profile:
    let
      args = common // {
        pname = profile.packageName;
        inherit (profile) cargoExtraArgs;
        # Named by `omnia --version`.
        OMNIA_PROFILE = profile.name;
      };
      # The same cargo flags for dependencies and package, so the package reuses them.
      deps = craneLib.buildDepsOnly args;
    in
    {
      inherit deps;
      package = craneLib.buildPackage (args // {
        cargoArtifacts = deps;
        meta = { mainProgram = "omnia"; description = profile.description; };
        passthru = { inherit profile; };
      });
      clippy = craneLib.cargoClippy (args // {
        cargoArtifacts = deps;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      });
    };

  # `wasm` precompiled by `runtime` (a JIT build): loads in every AOT-only build of the same
  # Omnia version, whose wasmtime and engine configuration are the same.
  precompiled = { runtime, wasm, name }:
    pkgs.runCommand "${name}.bin" { } ''
      ${runtime}/bin/omnia compile ${wasm} -o $out
    '';
in
{
  inherit src common runtime precompiled version;
}
