# Eval-only stand-in for fenix: a toolchain is a trivial derivation naming its parts.
{
  outputs = { self }:
    let
      part = system: name: builtins.derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo ${name} > $out" ];
      };
      forSystem = system: {
        combine = parts: part system "toolchain" // { stubParts = map (p: p.name) parts; };
        stable = builtins.listToAttrs (map (n: { name = n; value = part system n; }) [ "cargo" "rustc" "clippy" "rustfmt" "rust-src" ]);
      };
    in
    {
      packages = { x86_64-linux = forSystem "x86_64-linux"; aarch64-linux = forSystem "aarch64-linux"; };
    };
}
