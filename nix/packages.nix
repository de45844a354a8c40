# The `omnia` binary of each profile (crane).
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
    # No `doCheck` here: crane's own default (true) is what `buildDepsOnly` needs to build the
    # dev-dependencies too (`--all-targets`, `cargo test --no-run`), and `cargoNextest` to run
    # the tests at all. Only the package turns it off: the tests are `checks.tests`.
  };

  runtime = profile:
    let
      args = common // {
        pname = profile.packageName;
        inherit (profile) cargoExtraArgs;
        # Named by `omnia --version`.
        OMNIA_PROFILE = profile.name;
      };
      # The same cargo flags for dependencies, package and clippy, so both reuse them; with
      # crane's default `doCheck` the dependencies include the dev-dependencies clippy's
      # `--all-targets` needs, built once per profile.
      deps = craneLib.buildDepsOnly args;
    in
    {
      inherit deps;
      package = craneLib.buildPackage (args // {
        cargoArtifacts = deps;
        doCheck = false;
        meta = { mainProgram = "omnia"; description = profile.description; };
        passthru = { inherit profile; };
      });
      clippy = craneLib.cargoClippy (args // {
        cargoArtifacts = deps;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      });
    };
in
{
  inherit src common runtime version;
}
