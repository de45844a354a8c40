# Eval-only stand-in for nixpkgs (tests/offline.sh tier 3). Builders return trivial derivations
# that remember their arguments in `stubArgs`, so tests can check the wiring offline; but each
# takes the argument set the real one takes and fails on a wrong argument the way the real one
# does (nix/tests/stubs.sh checks that). The lib is in ./lib.nix, ./fileset.nix, ./modules.nix,
# runNixOSTest and the NixOS options in ./nixos.nix; each file names the source it mirrors.
{
  outputs = { self }:
    let
      lib = import ./lib.nix;
      drvWith = system: name: env: args: builtins.derivation ({
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo ${name} > $out" ];
      } // env) // { stubArgs = args; version = if builtins.isAttrs args then args.version or "0.0.0" else "0.0.0"; };

      pkgsFor = system:
        let
          drv = name: args: drvWith system name { } args;
          pkg = name: drv name { };
          pkgs = {
            inherit lib;
            stdenv.hostPlatform.system = system;

            # pkgs/build-support/trivial-builders/default.nix runCommand: runs `buildCommand`
            # with the nativeBuildInputs' bin/ on PATH (plus the host's /usr/bin and /bin, as the
            # stand-in has no stdenv), so a check's script really runs in `nix flake check`.
            runCommand = name: env: buildCommand:
              let bins = map (p: "${p}/bin") ((env.nativeBuildInputs or [ ]) ++ (env.buildInputs or [ ])); in
              drvWith system name {
                args = [ "-c" "set -e\n${buildCommand}" ];
                PATH = builtins.concatStringsSep ":" (bins ++ [ "/usr/bin" "/bin" ]);
              } (env // { script = buildCommand; });

            dockerTools = rec {
              # NixOS/nixpkgs pkgs/build-support/docker/default.nix. The locked revision's file is
              # not readable here; the argument sets are nixpkgs' since the 24.11 cycle:
              # `buildLayeredImage = lib.makeOverridable ({ name, compressor ? "gz", ... }@args:`
              # (PR #292760) passing the rest to streamLayeredImage, whose closed set follows
              # (layeringPipeline, includeNixDB, meta, mtime, uname/gname and debug included).
              # An unknown attribute fails as in Nix: "called with unexpected argument".
              streamLayeredImage =
                { name, tag ? null, fromImage ? null, contents ? [ ], config ? { },
                  architecture ? { x86_64-linux = "amd64"; aarch64-linux = "arm64"; }.${system},
                  created ? "1970-01-01T00:00:01Z", mtime ? "1970-01-01T00:00:01Z",
                  uid ? 0, gid ? 0, uname ? "root", gname ? "root", maxLayers ? 100,
                  extraCommands ? "", fakeRootCommands ? "", enableFakechroot ? false,
                  includeStorePaths ? true, includeNixDB ? false, passthru ? { }, meta ? { },
                  layeringPipeline ? null, debug ? false }@args:
                assert lib.assertMsg (maxLayers > 1)
                  "the maxLayers argument of dockerTools.buildLayeredImage function must be greather than 1 (current value: ${toString maxLayers})";
                drv "stream-${baseNameOf name}" args // passthru // {
                  imageName = lib.toLower name;
                  imageTag = if tag != null then tag else "stand-in-hash";
                  isExe = true;
                };
              buildLayeredImage = { name, compressor ? "gz", ... }@args:
                let
                  stream = streamLayeredImage (removeAttrs args [ "compressor" ]);
                  ext = { none = ""; gz = ".gz"; zstd = ".zst"; }.${compressor}
                    or (throw "in docker image ${name}: compressor must be one of: [none gz zstd]");
                in
                # Like the real one, the image's build reads the stream (so evaluating it checks
                # the stream's arguments).
                drvWith system "${baseNameOf name}.tar${ext}" { stream = "${stream}"; } args // { inherit (stream) imageName imageTag; };
              caCertificates = pkg "ca-certificates";
            };

            testers.runNixOSTest = (import ./nixos.nix {
              inherit lib pkgs;
              drv = drvWith system;
            }).runNixOSTest;
          } // builtins.listToAttrs (map (n: { name = n; value = pkg n; })
            [ "redis" "nats-server" "natscli" "cargo-nextest" "wrk" "skopeo" "umoci" "pkg-config" "curl" "coreutils" ]);
        in
        pkgs;
    in
    {
      # What tests use to evaluate a module alone (nix/tests/stubs.sh).
      lib = lib // { nixosOptions = (import ./nixos.nix { inherit lib; pkgs = { }; drv = _: _: _: { }; }).nixosOptions; };
      legacyPackages = builtins.listToAttrs (map (s: { name = s; value = pkgsFor s; }) [ "x86_64-linux" "aarch64-linux" ]);
    };
}
