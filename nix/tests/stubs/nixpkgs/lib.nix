# The part of nixpkgs' `lib` the flake calls, as strict as the real functions (nix/tests/stubs.sh
# passes each a wrong argument and expects the real error text).
#
# Mirrors nixpkgs `lib/` as of nix-community/nixpkgs.lib b04b7722f9981baa3b5cabc26849de379e188a5d
# (master, 2026-05-10, the lib nearest the locked nixpkgs nixos-25.11 8fd9daa3, whose own tree
# is not readable here): each function names its file below. Error messages are copied; what
# is left out is said next to each function.
let
  inherit (builtins)
    all attrNames concatMap concatStringsSep elem elemAt filter foldl' functionArgs genList
    getEnv hasAttr head isAttrs isBool isFunction isInt isList isPath isString length
    listToAttrs mapAttrs match pathExists readDir removeAttrs split stringLength substring
    tail toJSON toString typeOf;

  lib = rec {
    # lib/trivial.nix `warn` (the branch for Nix < 2.23, which has no builtins.warn): a trace,
    # or an abort when NIX_ABORT_ON_WARN is set. Stand-ins also record their warnings in
    # `stubWarnings` so tests can assert them without reading stderr.
    warn = msg: v:
      assert isString msg;
      if elem (getEnv "NIX_ABORT_ON_WARN") [ "1" "true" "yes" ] then
        builtins.trace "[1;31mevaluation warning:[0m ${msg}"
          (abort "NIX_ABORT_ON_WARN=true; warnings are treated as unrecoverable errors.")
      else builtins.trace "[1;35mevaluation warning:[0m ${msg}" v;
    warnIf = c: msg: v: if c then warn msg v else v;
    # lib/asserts.nix assertMsg
    assertMsg = pred: msg: pred || throw msg;

    # lib/.version + the locked revision's date and hash, as lib.version gives them.
    version = "25.11.20260510.8fd9daa";
    filter = builtins.filter;
    hasPrefix = pre: s: substring 0 (stringLength pre) s == pre;
    sublist = start: count: xs: let n = length xs; end = if start + count > n then n else start + count; in
      if start >= n then [ ] else genList (i: elemAt xs (start + i)) (end - start);
    optionalString = c: s: if c then s else "";
    optionalAttrs = c: a: if c then a else { };
    optional = c: x: if c then [ x ] else [ ];
    hasSuffix = suffix: s: let n = stringLength s; m = stringLength suffix; in n >= m && substring (n - m) m s == suffix;
    imap0 = f: xs: genList (i: f i (elemAt xs i)) (length xs);
    toLower = builtins.replaceStrings
      [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ]
      [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
    isDerivation = v: (v.type or null) == "derivation";
    isStringLike = v: isString v || isPath v || v ? outPath || v ? __toString;
    # lib/strings.nix getName
    getName = x: if isString x then (builtins.parseDrvName x).name else x.pname or (builtins.parseDrvName x.name).name;
    escapeNixIdentifier = s: if match "[a-zA-Z_][a-zA-Z0-9_'-]*" s != null then s else toJSON s;

    # lib/meta.nix getExe / getExe': `meta.mainProgram`, else a warning and the package's name.
    getExe = x:
      getExe' x (x.meta.mainProgram or (warn
        "getExe: Package ${escapeNixIdentifier (x.meta.name or x.pname or x.name)} does not have the meta.mainProgram attribute. We'll assume that the main program has the same name for now, but this behavior is deprecated, because it leads to surprising errors when the assumption does not hold. If the package has a main program, please set `meta.mainProgram` in its definition to make this warning go away. Otherwise, if the package does not have a main program, or if you don't control its definition, use getExe' to specify the name to the program, such as lib.getExe' foo \"bar\"."
        (getName x)));
    getExe' = x: y:
      assert assertMsg (isDerivation x)
        "lib.meta.getExe': The first argument is of type ${typeOf x}, but it should be a derivation instead.";
      assert assertMsg (isString y)
        "lib.meta.getExe': The second argument is of type ${typeOf y}, but it should be a string instead.";
      assert assertMsg (match ".*/.*" y == null)
        "lib.meta.getExe': The second argument \"${y}\" is a nested path with a \"/\" character, but it should just be the name of the executable instead.";
      "${x.bin or x.out or x}/bin/${y}";

    # lib/options.nix literalExpression
    literalExpression = text:
      if !isString text then throw "literalExpression expects a string."
      else { _type = "literalExpression"; inherit text; };

    fileset = import ./fileset.nix { inherit lib; };
  } // import ./modules.nix { inherit lib; };
in
lib
