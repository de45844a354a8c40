# lib.fileset stand-in: the argument checks and error messages of nixpkgs lib/fileset/default.nix
# and lib/fileset/internal.nix (`_coerce`, `_coerceMany`) at nix-community/nixpkgs.lib
# b04b7722f9981baa3b5cabc26849de379e188a5d. A file set here is its base path plus the parts it
# was made of; nothing is copied or filtered (toSource's `outPath` is a placeholder), but every
# path must exist, `toSource` takes exactly { root, fileset }, the file set must lie under `root`,
# and fileFilter's predicate must accept the extra attributes the real one passes.
{ lib }:
let
  inherit (builtins) concatStringsSep filter foldl' genList head isFunction isList isPath isString length
    pathExists readDir split substring stringLength tail toString typeOf;

  # Path components, for the common base of a union and the "under root" test.
  parts = p: filter (s: s != "" && !(builtins.isList s)) (split "/" (toString p));
  commonPrefix = a: b:
    let n = foldl' (acc: i: if acc == i && i < length a && i < length b && builtins.elemAt a i == builtins.elemAt b i then i + 1 else acc) 0 (genList (i: i) (length a));
    in genList (i: builtins.elemAt a i) n;
  isPrefixOf = pre: p: let a = parts pre; b = parts p; in length a <= length b && commonPrefix a b == a;
  pathType = p: if pathExists (toString p + "/") then "directory" else "regular";

  mk = base: what: { _type = "fileset"; _internalBase = base; _internalIsEmptyWithoutBase = false; stubParts = what; };

  # lib/fileset/internal.nix _coerceResult / _coerce
  coerce = context: value:
    if (value._type or "") == "fileset" then value
    else if !isPath value then
      if value ? _isLibCleanSourceWith then throw ''
        ${context} is a `lib.sources`-based value, but it should be a file set or a path instead.
            To convert a `lib.sources`-based value to a file set you can use `lib.fileset.fromSource`.
            Note that this only works for sources created from paths.''
      else if lib.isStringLike value then throw ''
        ${context} ("${toString value}") is a string-like value, but it should be a file set or a path instead.
            Paths represented as strings are not supported by `lib.fileset`, use `lib.sources` or derivations instead.''
      else throw "${context} is of type ${typeOf value}, but it should be a file set or a path instead."
    else if !pathExists value then throw ''
      ${context} (${toString value}) is a path that does not exist.
          To create a file set from a path that may not exist, use `lib.fileset.maybeMissing`.''
    else mk (if pathType value == "directory" then value else dirOf value) [ value ];

  # What fileFilter's predicate is called with (internal.nix _fileFilter), for one sample file.
  sampleFile = {
    name = "Cargo.toml";
    type = "regular";
    hasExt = ext: lib.hasSuffix ".${ext}" "Cargo.toml";
    "lib.fileset.fileFilter: The predicate function passed as the first argument must be able to handle extra attributes for future compatibility. If you're using `{ name, file, hasExt }:`, use `{ name, file, hasExt, ... }:` instead." = null;
  };
in
{
  # default.nix toSource: a closed { root, fileset }.
  toSource = { root, fileset }:
    let fs = coerce "lib.fileset.toSource: `fileset`" fileset; in
    if !isPath root then
      if root ? _isLibCleanSourceWith then throw ''
        lib.fileset.toSource: `root` is a `lib.sources`-based value, but it should be a path instead.
            To use a `lib.sources`-based value, convert it to a file set using `lib.fileset.fromSource` and pass it as `fileset`.
            Note that this only works for sources created from paths.''
      else if lib.isStringLike root then throw ''
        lib.fileset.toSource: `root` (${toString root}) is a string-like value, but it should be a path instead.
            Paths in strings are not supported by `lib.fileset`, use `lib.sources` or derivations instead.''
      else throw "lib.fileset.toSource: `root` is of type ${typeOf root}, but it should be a path instead."
    else if !pathExists root then throw "lib.fileset.toSource: `root` (${toString root}) is a path that does not exist."
    else if pathType root != "directory" then throw ''
      lib.fileset.toSource: `root` (${toString root}) is a file, but it should be a directory instead. Potential solutions:
          - If you want to import the file into the store _without_ a containing directory, use string interpolation or `builtins.path` instead of this function.
          - If you want to import the file into the store _with_ a containing directory, set `root` to the containing directory, such as ${toString (dirOf root)}, and set `fileset` to the file path.''
    else if !isPrefixOf root fs._internalBase then throw ''
      lib.fileset.toSource: `fileset` could contain files in ${toString fs._internalBase}, which is not under the `root` (${toString root}). Potential solutions:
          - Set `root` to ${toString fs._internalBase} or any directory higher up. This changes the layout of the resulting store path.
          - Set `fileset` to a file set that cannot contain files outside the `root` (${toString root}). This could change the files included in the result.''
    else builtins.seq (builtins.deepSeq fs.stubParts null) {
      # lib/sources.nix cleanSourceWith's shape, which crane's crateNameFromCargoToml reads.
      _isLibCleanSourceWith = true;
      origSrc = root;
      name = "source";
      stubFileset = fs;
      outPath = (builtins.derivation { name = "source"; system = builtins.currentSystem or "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo source > $out" ]; }).outPath;
    };

  # default.nix unions
  unions = filesets:
    if !isList filesets then throw "lib.fileset.unions: Argument is of type ${typeOf filesets}, but it should be a list instead."
    else
      let
        sets = lib.imap0 (i: el: coerce "lib.fileset.unions: Element ${toString i}" el) filesets;
        base = foldl' (acc: s: if acc == null then parts s._internalBase else commonPrefix acc (parts s._internalBase)) null sets;
      in
      if sets == [ ] then { _type = "fileset"; _internalIsEmptyWithoutBase = true; stubParts = [ ]; }
      else mk (/. + "/${concatStringsSep "/" base}") (builtins.concatMap (s: s.stubParts) sets);

  # default.nix fileFilter
  fileFilter = predicate: path:
    if !isFunction predicate then throw "lib.fileset.fileFilter: First argument is of type ${typeOf predicate}, but it should be a function instead."
    else if !isPath path then
      if (path._type or "") == "fileset" then throw ''
        lib.fileset.fileFilter: Second argument is a file set, but it should be a path instead.
            If you need to filter files in a file set, use `intersection fileset (fileFilter pred ./.)` instead.''
      else throw "lib.fileset.fileFilter: Second argument is of type ${typeOf path}, but it should be a path instead."
    else if !pathExists path then throw "lib.fileset.fileFilter: Second argument (${toString path}) is a path that does not exist."
    else mk path [ { filterOf = path; sample = builtins.isBool (predicate sampleFile) || throw "lib.fileset.fileFilter: the predicate must return a Boolean"; } ];
}
