# Eval-only stand-in for fenix (nix-community/fenix e8a633e2794e74b3354cc8199ae53af649340036, the
# locked revision). ./stable.json is that revision's data/stable.json cut down to the Linux
# targets (and the wasm targets of rust-std), without hashes: the `stable` toolchain is the Rust
# of its date, 2026-04-16, which is 1.95.0.
#
# Mirrors default.nix (`stable = fromManifest' v "-stable" (importJSON ./data/stable.json)`,
# `combine = combine' "rust-mixed"`, `targets.<t>.stable`) and lib/mk-toolchain.nix (one
# derivation per available component, pname "<component>-stable", version = the manifest's date,
# `-preview` names also without the suffix, `toolchain`, `withComponents`). Instead of
# unpacking the real tarballs, each component's bin/ holds scripts that print the version its
# URL names, so `rustc --version` gives "rustc 1.95.0 (fenix stand-in 2026-04-16)" and the
# flake's `toolchain` check really compares it with rust-toolchain.toml offline. Asking for a
# component the manifest lacks fails as in fenix (a missing attribute).
{
  outputs = { self }:
    let
      manifest = builtins.fromJSON (builtins.readFile ./stable.json);
      inherit (manifest) date;
      # What `<tool> --version` prints per component, from the version in the tarball's URL.
      versionOf = url: builtins.head (builtins.match ".*-([0-9]+\\.[0-9]+\\.[0-9]+)[-.].*" url);
      tools = {
        rustc = [ "rustc" "rustdoc" ];
        cargo = [ "cargo" ];
        clippy-preview = [ "cargo-clippy" "clippy-driver" ];
        rustfmt-preview = [ "rustfmt" "cargo-fmt" ];
      };
      component = system: name: src:
        let
          version = versionOf src.url;
          scripts = builtins.concatStringsSep "\n" (map (t: ''
            printf '#!/bin/sh\necho "${t} ${version} (fenix stand-in ${date})"\n' > $out/bin/${t}
            chmod +x $out/bin/${t}
          '') (tools.${name} or [ ]));
        in
        builtins.derivation {
          name = "${name}-stable-${date}";
          inherit system;
          builder = "/bin/sh";
          PATH = "/usr/bin:/bin";
          args = [ "-c" "mkdir -p $out/bin\n${scripts}" ];
        } // { pname = "${name}-stable"; version = date; stubRustVersion = version; };

      # lib/combine.nix: a symlinkJoin of the parts' files.
      combine' = system: name: paths: builtins.derivation {
        inherit name system;
        builder = "/bin/sh";
        PATH = "/usr/bin:/bin";
        args = [ "-c" ''
          mkdir -p $out/bin
          for p in ${toString paths}; do
            if [ -d $p/bin ]; then for f in $p/bin/*; do if [ -e "$f" ]; then ln -sf "$f" $out/bin/; fi; done; fi
          done
        '' ];
      } // { stubParts = map (p: p.name) paths; };

      fromManifest = system: target:
        let
          available = builtins.listToAttrs (builtins.concatMap (n:
            let t = manifest.pkg.${n}.target; s = t."*" or t.${target} or null; in
            if s != null && (s.available or false) then [ { name = n; value = component system n s; } ] else [ ])
            (builtins.attrNames manifest.pkg));
          withCombined = available
            // (if available ? rustc then { rustc = combine' system "rust-stable-with-std-${date}" ([ available.rustc ] ++ (if available ? rust-std then [ available.rust-std ] else [ ])) // { unwrapped = available.rustc; }; } else { })
            // { toolchain = combine' system "rust-stable-${date}" (builtins.attrValues (removeAttrs available [ "rustc-dev" ])); };
          unsuffixed = builtins.listToAttrs (map (n: { name = builtins.replaceStrings [ "-preview" ] [ "" ] n; value = withCombined.${n}; }) (builtins.attrNames withCombined));
          all = withCombined // unsuffixed;
        in
        all // { withComponents = names: combine' system "rust-stable-with-components-${date}" (map (n: all.${n}) names); inherit manifest; };

      rustTarget = { x86_64-linux = "x86_64-unknown-linux-gnu"; aarch64-linux = "aarch64-unknown-linux-gnu"; };
      forSystem = system: {
        combine = combine' system "rust-mixed";
        stable = fromManifest system rustTarget.${system};
        targets = builtins.listToAttrs (map (t: { name = t; value.stable = fromManifest system t; })
          (builtins.attrNames manifest.pkg.rust-std.target));
      };
    in
    {
      packages = { x86_64-linux = forSystem "x86_64-linux"; aarch64-linux = forSystem "aarch64-linux"; };
    };
}
