# Eval-only stand-in for crane: each builder returns a trivial derivation that records the
# arguments it was given (`stubArgs`) and what real crane would compute from them:
#   pname, version     lib/mkCargoDerivation.nix: `args.pname or crateName.pname` (+ pnameSuffix);
#                      missing ones come from lib/crateNameFromCargoToml.nix, which reads
#                      `src`'s Cargo.toml and, failing a name, warns and uses the placeholder
#                      "cargo-package" (version "0.0.1") -- the same `lib.warn` (a trace, an
#                      abort under NIX_ABORT_ON_WARN=1), also listed in `stubWarnings`;
#   doCheck            `args.doCheck or true` in buildDepsOnly, buildPackage and cargoNextest;
#                      stdenv's false elsewhere;
#   stubCommands       the buildPhaseCargoCommand / checkPhaseCargoCommand crane would run, e.g.
#                      buildDepsOnly's `cargo check` gets `--all-targets` only when doCheck;
#   required arguments cargoArtifacts for cargoClippy / cargoNextest (a missing one fails as in
#                      Nix: "called without required argument 'cargoArtifacts'").
# Mirrors ipetkov/crane v0.23.4 (10e6e3cb966f7cfcc789fe5eee7a85f3188ce08b): lib/default.nix
# (mkLib, the nixpkgs >= 25.11 warning, overrideToolchain), lib/buildDepsOnly.nix,
# lib/buildPackage.nix, lib/cargoClippy.nix, lib/cargoNextest.nix, lib/cargoFmt.nix,
# lib/devShell.nix, lib/mkCargoDerivation.nix, lib/crateNameFromCargoToml.nix,
# lib/internalCrateNameFromCargoToml.nix, lib/fileset/{commonCargoSources,cargoTomlAndLock,rust,toml}.nix.
{
  outputs = { self }: {
    mkLib = pkgs:
      let
        lib = pkgs.lib;
        current = builtins.concatStringsSep "." (lib.sublist 0 2 (builtins.splitVersion lib.version));

        # lib/crateNameFromCargoToml.nix (the warning text is crane's, without the hint line).
        crateName = args:
          let
            throwMsg = throw ''
              unable to infer crate name and version. please ensure one of the following:
              - a Cargo.toml exists at the root of the source directory of the derivation
              - `cargoToml` is set to a path to the package's Cargo.toml
              - `cargoTomlContents` is set to the contents of the package's Cargo.toml
              - `pname` and `version` are explicitly set 
            '';
            origSrc = src: if src ? _isLibCleanSourceWith then src.origSrc else src;
            src = origSrc (args.src or throwMsg);
            cargoToml = args.cargoToml or (src + "/Cargo.toml");
            contents = args.cargoTomlContents or (if builtins.pathExists cargoToml then builtins.readFile cargoToml else throwMsg);
            toml = builtins.fromTOML (builtins.unsafeDiscardStringContext contents);
            debugPath = if args ? cargoTomlContents then "provided Cargo.toml contents" else toString cargoToml;
            firstString = builtins.foldl' (acc: x: if acc == null && builtins.isString x then x else acc) null;
            name = firstString [ (toml.package.metadata.crane.name or null) (toml.package.name or null) (toml.workspace.metadata.crane.name or null) (toml.workspace.package.name or null) ];
            version = firstString [ (toml.package.version or null) (toml.workspace.package.version or null) ];
            msg = tomlName: drvName: hints: ''
              crane will use a placeholder value since `${tomlName}` cannot be found in ${debugPath}
              to silence this warning consider one of the following:
              - setting `${drvName} = "...";` in the derivation arguments explicitly
              - setting `package.${tomlName} = "..."` or ${builtins.concatStringsSep " or " hints} in the root Cargo.toml
              - explicitly looking up the values from a different Cargo.toml via 
                `craneLib.crateNameFromCargoToml { cargoToml = ./path/to/Cargo.toml; }`
            '';
            pnameMsg = msg "name" "pname" [ ''`package.metadata.crane.name` = "..."'' ''`workspace.metadata.crane.name` = "..."'' ];
            versionMsg = msg "version" "version" [ ''`workspace.package.version` = "..."'' ];
          in
          {
            pname = if name != null then name else lib.warn pnameMsg "cargo-package";
            version = if version != null then version else lib.warn versionMsg "0.0.1";
            warnings = (if args ? pname || name != null then [ ] else [ pnameMsg ])
              ++ (if args ? version || version != null then [ ] else [ versionMsg ]);
          };

        # lib/mkCargoDerivation.nix: cargoArtifacts and buildPhaseCargoCommand are required.
        mkCargoDerivation = kind:
          args@{ cargoArtifacts, buildPhaseCargoCommand, checkPhaseCargoCommand ? "", installPhaseCommand ? "mkdir -p $out", ... }:
          userArgs:
          let
            c = crateName args;
            pname = args.pname or c.pname;
            version = args.version or c.version;
            doCheck = args.doCheck or false;
          in
          builtins.derivation {
            # "<kind>-<pname>", not "<pname><suffix>-<version>": tier-3 checks match on it.
            name = "${kind}-${pname}";
            system = pkgs.stdenv.hostPlatform.system;
            builder = "/bin/sh";
            args = [ "-c" "echo ${kind} > $out" ];
            inherit buildPhaseCargoCommand checkPhaseCargoCommand;
            doCheck = if doCheck then "1" else "";
          } // (args.passthru or { }) // {
            stubArgs = userArgs;
            inherit kind pname version doCheck cargoArtifacts;
            pnameSuffix = args.pnameSuffix or "";
            meta = args.meta or { };
            stubCommands = { build = buildPhaseCargoCommand; check = checkPhaseCargoCommand; };
            # The warnings crane gives for the caller's arguments (the trace comes with `name`).
            stubWarnings = (crateName (if userArgs ? dummySrc then userArgs // { src = userArgs.dummySrc; } else userArgs)).warnings;
          };

        # lib/buildDepsOnly.nix
        buildDepsOnly =
          { cargoBuildCommand ? "cargoWithProfile build", cargoCheckCommand ? "cargoWithProfile check",
            cargoExtraArgs ? "--locked", cargoBuildExtraArgs ? "", cargoTestCommand ? "cargoWithProfile test",
            cargoTestExtraArgs ? "--no-run", ... }@args:
          let
            doCheck = args.doCheck or true;
            cargoCheckExtraArgs = args.cargoCheckExtraArgs or (if doCheck then "--all-targets" else "");
            cleaned = removeAttrs args [ "cargoBuildCommand" "cargoCheckCommand" "cargoCheckExtraArgs" "cargoExtraArgs"
              "cargoBuildExtraArgs" "cargoTestCommand" "cargoTestExtraArgs" "outputHashes" "dummySrc" "outputs" ];
            c = crateName (if args ? dummySrc then args // { src = args.dummySrc; } else args);
          in
          mkCargoDerivation "deps" (cleaned // {
            inherit doCheck;
            pnameSuffix = "-deps";
            pname = args.pname or c.pname;
            version = args.version or c.version;
            cargoArtifacts = null;
            buildPhaseCargoCommand = args.buildPhaseCargoCommand or ''
              ${cargoCheckCommand} ${cargoExtraArgs} ${cargoCheckExtraArgs}
              ${cargoBuildCommand} ${cargoExtraArgs} ${cargoBuildExtraArgs}
            '';
            checkPhaseCargoCommand = args.checkPhaseCargoCommand or ''
              ${cargoTestCommand} ${cargoExtraArgs} ${cargoTestExtraArgs}
            '';
          }) args;

        craneLib = {
          inherit buildDepsOnly;
          toolchain = null;

          # lib/default.nix overrideToolchain: a function of pkgs, or (legacy) a toolchain.
          overrideToolchain = toolchainArg:
            let toolchain = if builtins.isFunction toolchainArg then toolchainArg pkgs else toolchainArg; in
            craneLib // { inherit toolchain; cargo = toolchain; clippy = toolchain; rustc = toolchain; rustfmt = toolchain; };

          # lib/buildPackage.nix
          buildPackage =
            { cargoBuildCommand ? "cargoWithProfile build", cargoExtraArgs ? "--locked", cargoBuildExtraArgs ? "",
              cargoTestCommand ? "cargoWithProfile test", cargoTestExtraArgs ? "", ... }@args:
            let
              c = crateName args;
              memoized = { pname = args.pname or c.pname; version = args.version or c.version; };
              cleaned = removeAttrs args [ "cargoBuildCommand" "cargoExtraArgs" "cargoBuildExtraArgs" "cargoTestCommand" "cargoTestExtraArgs" "outputHashes" ];
            in
            mkCargoDerivation "package" (cleaned // memoized // {
              doCheck = args.doCheck or true;
              cargoArtifacts = args.cargoArtifacts or (buildDepsOnly (args // memoized // { installPhase = "prepareAndInstallCargoArtifactsDir"; }));
              buildPhaseCargoCommand = args.buildPhaseCargoCommand or ''
                cargoBuildLog=$(mktemp cargoBuildLogXXXX.json)
                ${cargoBuildCommand} --message-format json-render-diagnostics ${cargoExtraArgs} ${cargoBuildExtraArgs} >"$cargoBuildLog"
              '';
              checkPhaseCargoCommand = args.checkPhaseCargoCommand or ''
                ${cargoTestCommand} ${cargoExtraArgs} ${cargoTestExtraArgs}
              '';
            }) args;

          # lib/cargoClippy.nix
          cargoClippy = { cargoArtifacts, cargoClippyExtraArgs ? "--all-targets", cargoExtraArgs ? "--locked", ... }@origArgs:
            mkCargoDerivation "clippy" (removeAttrs origArgs [ "cargoClippyExtraArgs" "cargoExtraArgs" ] // {
              inherit cargoArtifacts;
              pnameSuffix = "-clippy";
              buildPhaseCargoCommand = "cargoWithProfile clippy ${cargoExtraArgs} ${cargoClippyExtraArgs}";
            }) origArgs;

          # lib/cargoNextest.nix (one partition; more run as in crane, in one stand-in derivation)
          cargoNextest =
            { cargoArtifacts, cargoExtraArgs ? "", cargoLlvmCovExtraArgs ? "--lcov --output-path $out/coverage",
              cargoNextestExtraArgs ? "", cargoNextestArchiveExtraArgs ? "", cargoNextestPartitionsExtraArgs ? "",
              doInstallCargoArtifacts ? true, partitions ? 1, partitionType ? "count", withLlvmCov ? false, ... }@origArgs:
            let
              args = removeAttrs origArgs [ "cargoExtraArgs" "cargoLlvmCovExtraArgs" "cargoNextestExtraArgs"
                "cargoNextestPartitionsExtraArgs" "partitions" "partitionType" "withLlvmCov" ];
            in
            if partitions < 1 then throw "paritions must be at least 1 or greater"
            else mkCargoDerivation "nextest" (args // {
              inherit cargoArtifacts;
              pnameSuffix = "-nextest";
              doCheck = args.doCheck or true;
              buildPhaseCargoCommand = args.buildPhaseCargoCommand or "mkdir -p $out\ncargo nextest --version\n";
              checkPhaseCargoCommand = ''
                ${if withLlvmCov then "cargo llvm-cov nextest ${cargoLlvmCovExtraArgs}" else "cargo nextest run"} \
                ''${CARGO_PROFILE:+--cargo-profile $CARGO_PROFILE} ${cargoExtraArgs} ${cargoNextestExtraArgs} ${cargoNextestPartitionsExtraArgs}
              '';
            }) origArgs;

          # lib/cargoFmt.nix
          cargoFmt = { cargoExtraArgs ? "", rustFmtExtraArgs ? "", ... }@origArgs:
            mkCargoDerivation "fmt" (removeAttrs origArgs [ "cargoExtraArgs" "rustFmtExtraArgs" ] // {
              cargoArtifacts = null;
              pnameSuffix = "-fmt";
              buildPhaseCargoCommand = "cargo fmt ${cargoExtraArgs} -- --check ${rustFmtExtraArgs}";
            }) origArgs;

          # lib/devShell.nix (mkShell: no crate name, no cargo commands)
          devShell = { checks ? { }, inputsFrom ? [ ], packages ? [ ], ... }@args:
            builtins.derivation {
              name = "shell-workspace";
              system = pkgs.stdenv.hostPlatform.system;
              builder = "/bin/sh";
              args = [ "-c" "echo shell > $out" ];
            } // { stubArgs = args; kind = "shell"; version = "0.0.0"; inputsFrom = builtins.attrValues checks ++ inputsFrom; };

          # lib/fileset/*.nix
          fileset = rec {
            cargoTomlAndLock = path: lib.fileset.fileFilter (file: builtins.elem file.name [ "Cargo.toml" "Cargo.lock" ]) path;
            rust = path: lib.fileset.fileFilter (file: file.hasExt "rs") path;
            toml = path: lib.fileset.fileFilter (file: file.hasExt "toml") path;
            configToml = path: lib.fileset.fileFilter (file: file.name == "config.toml") path;
            commonCargoSources = path: lib.fileset.unions [ (cargoTomlAndLock path) (rust path) (toml path) ];
          };
        };
      in
      # lib/default.nix: `lib.warnIf isUnsupported msg`
      lib.warnIf (builtins.compareVersions current "25.11" < 0) "crane requires at least nixpkgs-25.11, supplied nixpkgs-${current}" craneLib;
  };
}
