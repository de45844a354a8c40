{
  description = "Omnia: a runtime distribution for WebAssembly components, one binary and OCI image per profile";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    crane.url = "github:ipetkov/crane/v0.23.4";
    fenix = {
      url = "github:nix-community/fenix";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.rust-analyzer-src.follows = "";
    };
  };

  # The spine (which outputs exist, and their names) comes only from profiles/*.toml through
  # the builtins-only nix/lib/profiles.nix, never from nixpkgs: it evaluates offline, and
  # `nix eval .#lib.profiles` shows the whole plan without fetching anything.
  outputs = { self, nixpkgs, crane, fenix }:
    let
      P = import ./nix/lib/profiles.nix;
      profiles = P.checkFeatures ./crates/omnia-cli/Cargo.toml (P.loadProfiles ./profiles);
      systems = [ "x86_64-linux" "aarch64-linux" ];
      eachSystem = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      perSystem = eachSystem (system: import ./nix/per-system.nix {
        inherit self nixpkgs crane fenix system profiles P;
      });
      pick = output: builtins.mapAttrs (_: outputs: outputs.${output}) perSystem;
    in
    {
      lib = {
        inherit profiles;
        inherit (P) catalog;
        # The output names the profiles give (what `nix flake show` should list).
        outputNames = P.outputNames profiles;
      };
      packages = pick "packages";
      apps = pick "apps";
      checks = pick "checks";
      devShells = pick "devShells";
      nixosModules.default = import ./nix/nixos-module.nix { inherit self; };
    };
}
