# A `pkgs` for one system in which only what makes derivations is replaced by recorders; the
# rest (`lib`, `callPackage`, scopes and splicing, platforms) is nixpkgs' own code or mirrors it.
#
# A recorder returns a trivial derivation that keeps its arguments in `drvArgs` and the name of
# the builder it stands for in `drvBuilder`, so tests read what crane, fenix and Omnia's
# nix/*.nix passed to nixpkgs. Mirrors nixpkgs 25.11:
#   pkgs/stdenv/generic/make-derivation.nix   stdenv.mkDerivation (args or finalAttrs: args)
#   pkgs/build-support/trivial-builders       runCommand, writeText, symlinkJoin, ...
#   pkgs/build-support/fetchurl, fetchgit     fetchers
#   pkgs/build-support/docker                 dockerTools.buildLayeredImage, caCertificates
#   pkgs/build-support/testers                testers.runNixOSTest, nixosTest
#   pkgs/top-level/splice.nix                 callPackage/newScope/splicePackages (native build:
#                                             splicePackages returns pkgsHostTarget, as there)
{ lib, system }:
let
  platform = lib.systems.elaborate { inherit system; };

  # A recorder (above); `recorderWith env` puts `env` in its derivation too, so that its output
  # path depends on it.
  recorderWith = env: drvBuilder: args:
    let name = args.name or "${args.pname}-${args.version}"; in
    builtins.derivation ({
      inherit name system;
      builder = "/bin/sh";
      args = [ "-c" "echo ${drvBuilder} > $out" ];
    } // env)
    // (args.passthru or { })
    // lib.optionalAttrs (args ? pname) { inherit (args) pname; }
    // lib.optionalAttrs (args ? version) { inherit (args) version; }
    // {
      inherit name drvBuilder;
      drvArgs = args;
      meta = args.meta or { };
      # `prev: { ... }` or `final: prev: { ... }`, as in make-derivation.nix.
      overrideAttrs = f: let g = f args; in recorderWith env drvBuilder (args // (if builtins.isFunction g then g args else g));
    };
  recorder = recorderWith { };

  # stdenv.mkDerivation takes attributes or `finalAttrs: attributes` (make-derivation.nix).
  mkDerivation = argsOrFn:
    let args = if builtins.isFunction argsOrFn then lib.fix argsOrFn else argsOrFn; in
    recorder "stdenv.mkDerivation" args;

  stdenv = {
    inherit mkDerivation;
    hostPlatform = platform;
    buildPlatform = platform;
    targetPlatform = platform;
    inherit (platform) isLinux isDarwin system;
    cc = recorder "stdenv.cc" { name = "gcc-wrapper"; passthru = { targetPrefix = ""; bintools.dynamicLinker = "/lib/ld-linux.so"; cc.lib = "/lib"; }; };
  };

  # A tool from nixpkgs: a recorded derivation named after its attribute.
  tool = name: recorder "pkgs.${name}" { inherit name; };

  pkgs = {
    inherit lib stdenv pkgs;
    inherit (platform) system;
    hostPlatform = platform;
    buildPlatform = platform;
    targetPlatform = platform;

    # splice.nix for a native build; stage.nix's makeScopeWithSplicing'.
    buildPackages = pkgs;
    pkgsBuildBuild = pkgs;
    pkgsBuildHost = pkgs;
    pkgsBuildTarget = pkgs;
    pkgsHostHost = pkgs;
    pkgsHostTarget = pkgs;
    pkgsTargetTarget = { };
    targetPackages = pkgs;
    splicePackages = args: args.pkgsHostTarget;
    newScope = extra: lib.callPackageWith (pkgs // extra);
    callPackage = pkgs.newScope { };
    makeScopeWithSplicing' = lib.makeScopeWithSplicing' { inherit (pkgs) splicePackages newScope; };

    # trivial-builders (all end in stdenv.mkDerivation; recorded under their own name).
    runCommand = name: env: buildCommand: recorder "runCommand" (env // { inherit name buildCommand; });
    runCommandLocal = pkgs.runCommand;
    # Its output depends on the text, as the real one's does (a unit's X-Reload-Triggers file).
    writeText = name: text: recorderWith { inherit text; } "writeText" { inherit name text; };
    writeTextFile = args: recorder "writeTextFile" args;
    writeShellScriptBin = name: text: recorder "writeShellScriptBin" { inherit name text; meta.mainProgram = name; };
    writeShellApplication = args: recorder "writeShellApplication" args;
    symlinkJoin = args: recorder "symlinkJoin" args;
    linkFarm = name: entries: recorder "linkFarm" { inherit name entries; };
    makeSetupHook = args: script: recorder "makeSetupHook" (args // { inherit script; });
    mkShell = args: recorder "mkShell" (args // { name = args.name or "nix-shell"; });

    fetchurl = args: recorder "fetchurl" (args // { name = args.name or baseNameOf args.url; });
    fetchgit = args: recorder "fetchgit" (args // { name = args.name or "source"; });
    fetchzip = args: recorder "fetchzip" (args // { name = args.name or "source"; });

    rustPlatform.buildRustPackage = args: recorder "rustPlatform.buildRustPackage" args;
    makeRustPlatform = _: pkgs.rustPlatform;
    # fenix's flake output lists every attribute, its rust-analyzer extension too.
    vscode-utils.buildVscodeExtension = args: recorder "vscode-utils.buildVscodeExtension" args;

    dockerTools = {
      buildLayeredImage = args: recorder "dockerTools.buildLayeredImage" args;
      streamLayeredImage = args: recorder "dockerTools.streamLayeredImage" args;
      buildImage = args: recorder "dockerTools.buildImage" args;
      caCertificates = tool "docker-ca-certificates";
      fakeNss = tool "fake-nss";
      binSh = tool "bin-sh";
      usrBinEnv = tool "usr-bin-env";
    };

    testers = {
      runNixOSTest = args: recorder "testers.runNixOSTest" (args // { name = "vm-test-run-${args.name}"; });
      nixosTest = args: recorder "testers.nixosTest" (args // { name = "vm-test-run-${args.name}"; });
    };
  }
  // lib.genAttrs [
    # What crane, fenix and Omnia's nix/*.nix name from pkgs (callPackage needs every argument).
    "rsync" "zstd" "jq" "git" "taplo" "remarshal" "cargo" "rustc" "clippy" "rustfmt"
    "cargo-nextest" "cargo-llvm-cov" "cargo-tarpaulin" "cargo-deny" "cargo-audit" "trunk"
    "wasm-bindgen-cli" "binaryen" "dart-sass" "writableTmpDirAsHomeHook" "zlib" "curl"
    "makeBinaryWrapper" "libiconv" "moreutils" "unzip" "nixpkgs-fmt"
    "pkg-config" "redis" "nats-server" "natscli" "wrk" "skopeo" "umoci"
    "coreutils" "findutils" "gnugrep" "gnused" "systemd" "bash"
  ] tool;
in
pkgs
