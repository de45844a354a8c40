# Eval-only stand-in for crane: records the arguments of each builder (see ../nixpkgs).
{
  outputs = { self }: {
    mkLib = pkgs:
      let
        drv = kind: args: builtins.derivation {
          name = "${kind}-${args.pname or "workspace"}";
          system = pkgs.stdenv.hostPlatform.system;
          builder = "/bin/sh";
          args = [ "-c" "echo ${kind} > $out" ];
        } // { stubArgs = args; kind = kind; version = args.version or "0.0.0"; };
        lib = {
          overrideToolchain = f: lib // { toolchain = f pkgs; };
          buildDepsOnly = drv "deps";
          buildPackage = drv "package";
          cargoClippy = drv "clippy";
          cargoNextest = drv "nextest";
          cargoFmt = drv "fmt";
          devShell = drv "shell";
          fileset.commonCargoSources = root: root;
        };
      in
      lib;
  };
}
