# Omnia's flake evaluated with the real nixpkgs lib, crane and fenix (nix/tests/real.sh).
#
#   dir: holds crane/, fenix/ and nixpkgs-lib/ (nix/tests/get-real-sources.sh)
#   src: Omnia's tracked files (real.sh passes `builtins.fetchGit` of the checkout, so that
#        cargo's target/ is not read by lib.fileset)
#   stubs: nix/tests/stubs of the checkout (the stand-ins, for comparisons)
#
# The flake is called the way Nix calls one (call-flake.nix: `outputs (inputs // { self })`,
# `self` being the outputs plus the source), once with the real inputs and once with the
# stand-ins of nix/tests/stubs, so that tests can compare what both give.
{ dir, src, stubs ? src + "/nix/tests/stubs" }:
let
  lib = import ./lib.nix (dir + "/nixpkgs-lib/lib");
  systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" "i686-linux" ];

  # nixpkgs: the real lib; legacyPackages are recorders (pkgs.nix).
  nixpkgs = {
    inherit lib;
    outPath = dir + "/nixpkgs-lib";
    legacyPackages = lib.genAttrs systems (system: import ./pkgs.nix { inherit lib system; });
  };

  # crane's and fenix's own flake.nix. fenix's inputs are those flake.lock gives it:
  # nixpkgs follows ours, and rust-analyzer-src follows "" (the root flake, Omnia).
  crane = (import (dir + "/crane/flake.nix")).outputs { } // { outPath = dir + "/crane"; };
  fenix = (import (dir + "/fenix/flake.nix")).outputs {
    self = fenix;
    inherit nixpkgs;
    rust-analyzer-src = omnia;
  } // { outPath = dir + "/fenix"; };

  callFlake = inputs:
    let
      outputs = (import (src + "/flake.nix")).outputs (inputs // { self = self; });
      self = outputs // { outPath = src; inherit outputs inputs; _type = "flake"; };
    in
    self;

  omnia = callFlake { inherit nixpkgs crane fenix; };

  # The stand-in tier's inputs (nix/tests/offline.sh tier 3), for comparisons.
  stub = name: (import (stubs + "/${name}/flake.nix")).outputs { self = { }; };
  standin = callFlake { nixpkgs = stub "nixpkgs"; crane = stub "crane"; fenix = stub "fenix"; };

  pkgs = nixpkgs.legacyPackages.x86_64-linux;
  nixos = import ./nixos.nix { inherit lib pkgs; };
in
{
  inherit lib pkgs nixos crane fenix omnia standin;
  craneLib = crane.mkLib pkgs;
  profiles = omnia.lib.profiles;
}
