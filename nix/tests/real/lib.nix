# The real nixpkgs `lib` (DIR/nixpkgs-lib/lib, nix-community/nixpkgs.lib) on Debian's Nix 2.8.
#
# The only builtin it needs that 2.8 lacks (on the paths this tier takes) is
# `builtins.readFileType` (Nix 2.14), used by `lib.fileset` and `lib.filesystem.pathType`. It is
# shimmed here the way nixpkgs itself did before 2.14 (lib/filesystem.nix, nixpkgs 23.05):
# the type is read from the parent directory's `readDir`. The shim reaches every file of lib
# through `scopedImport`, which rebinds `builtins` (and `import`, so nested files get it too).
# Nothing else is changed; on a Nix that has `readFileType`, the real one is used.
libDir:
let
  readFileType = builtins.readFileType or (path:
    if dirOf path == path then "directory"
    else (builtins.readDir (dirOf path)).${baseNameOf path});
  scope = {
    builtins = builtins // { inherit readFileType; };
    import = scopedImport scope;
    scopedImport = attrs: scopedImport (scope // attrs);
  };
in
scopedImport scope (libDir + "/default.nix")
