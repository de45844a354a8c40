# The Rust toolchain from fenix: the `stable` of the locked fenix revision, which is Rust
# 1.95.0 as rust-toolchain.toml pins for rustup users (the `toolchain` check compares them).
# No hash and no import-from-derivation, so `nix flake show` works everywhere.
{ fenix, system }:
let
  f = fenix.packages.${system};
  pinned = (builtins.fromTOML (builtins.readFile ../rust-toolchain.toml)).toolchain.channel;
in
{
  rust = f.combine [ f.stable.cargo f.stable.rustc f.stable.clippy f.stable.rustfmt f.stable.rust-src ];
  inherit pinned;
}
