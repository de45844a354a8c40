# Everything the flake builds for one system. Output names come from `profiles` (pure); values
# are built lazily from nixpkgs, crane and fenix, so the spine evaluates without them.
{ self, nixpkgs, crane, fenix, system, profiles, P }:
let
  pkgs = nixpkgs.legacyPackages.${system};
  toolchain = import ./toolchain.nix { inherit fenix system; };
  craneLib = (crane.mkLib pkgs).overrideToolchain (_: toolchain.rust);
  build = import ./packages.nix { inherit pkgs craneLib; };
  oci = import ./oci.nix { inherit pkgs P self; };
  vm = import ./tests/vm.nix { inherit pkgs self; };

  list = builtins.attrValues profiles;
  byName = f: builtins.listToAttrs (map f list);

  # Per profile: one set of dependencies shared by its package and its clippy check.
  runtimes = builtins.mapAttrs (_: profile: build.runtime profile) profiles;
  package = profile: runtimes.${profile.name}.package;

  # The example guest of the VM tests: the key-value guest. An AOT-only profile gets it
  # precompiled inside the VM by the full runtime (the same wasmtime build and configuration as
  # every profile), for the VM's CPU rather than the builder's.
  vmTest = profile: vm.test {
    inherit profile;
    package = package profile;
    wasm = ../tests/guests/bin/kv-http.wasm;
    compiler = if profile.jit then null else package profiles.full;
  };

  packages =
    byName (p: { name = p.packageName; value = package p; })
    // byName (p: { name = p.ociName; value = oci.image { profile = p; package = package p; }; })
    // { default = package profiles.full; };

  apps =
    byName (p: {
      name = p.appName;
      value = {
        type = "app";
        program = "${package p}/bin/omnia";
        meta.description = p.description;
      };
    })
    // { default = apps.${profiles.full.appName}; };

  checks = import ./checks.nix {
    inherit pkgs craneLib build toolchain runtimes profiles byName;
  }
  // byName (p: {
    name = if p.vmTestName == null then "no-vm-${p.name}" else p.vmTestName;
    value = vmTest p;
  });

  # Profiles without services have no VM test: drop the placeholder names.
  checksWithVms = removeAttrs checks (map (p: "no-vm-${p.name}") (builtins.filter (p: p.vmTestName == null) list));

  devShells.default = craneLib.devShell {
    checks = removeAttrs checksWithVms (builtins.filter (n: builtins.substring 0 3 n == "vm-") (builtins.attrNames checksWithVms));
    packages = with pkgs; [ redis nats-server natscli cargo-nextest wrk skopeo umoci ];
  };
in
{
  inherit packages apps devShells;
  checks = checksWithVms;
}
