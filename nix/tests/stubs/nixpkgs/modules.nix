# A small module system, as strict as nixpkgs' where the flake relies on it. Mirrors, at
# nix-community/nixpkgs.lib b04b7722f9981baa3b5cabc26849de379e188a5d:
#   lib/options.nix  mkOption (the same closed argument set), mkEnableOption, mergeEqualOption,
#                    showOption;
#   lib/modules.nix  evalModules (imports, shorthand and `config`/`options` modules, undeclared
#                    definitions: "The option `x' does not exist.", mkIf/mkMerge/mkOverride
#                    pushed down then discharged, "‘mkIf’ called with a non-Boolean condition",
#                    "A definition for option `x' is not of type `t'.", "... was accessed but has
#                    no value defined ...");
#   lib/types.nix    the types below, with the real `check` and `description`.
# Differs: an option with no definition and no default is a marker that throws the real
# "was accessed but has no value defined" when turned into a string or printed, not on any
# access. Left out: freeformType, _module.args, disabledModules, option-declaration merging rules,
# type merging of two declarations, and the exact layout of "Definition values:".
{ lib }:
let
  inherit (builtins)
    all attrNames concatMap concatStringsSep elem filter foldl' functionArgs head intersectAttrs
    isAttrs isBool isFunction isInt isList isPath isString length listToAttrs mapAttrs match
    removeAttrs toJSON toString typeOf;

  isOption = v: isAttrs v && (v._type or null) == "option";
  isType = t: v: isAttrs v && (v._type or null) == t;
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];

  # lib/options.nix showOption / showDefs (values printed on one line).
  showOption = parts: concatStringsSep "." (map (p: if p == "*" || match "<(.*)>" p != null then p else lib.escapeNixIdentifier p) parts);
  pretty = v:
    if lib.isDerivation v then "<derivation ${v.name}>"
    else if isFunction v then "<function>"
    else if isPath v then toString v
    else if isAttrs v then "{ ${concatStringsSep " " (map (n: "${lib.escapeNixIdentifier n} = ${pretty v.${n}};") (attrNames v))} }"
    else if isList v then "[ ${concatStringsSep " " (map pretty v)} ]"
    else toJSON v;
  showDefs = defs: concatStringsSep "" (map (d: let r = builtins.tryEval (pretty d.value); in "\n- In `${d.file}'${if r.success then ": ${r.value}" else ""}") defs);

  # lib/options.nix mergeEqualOption, mergeOneOption
  mergeEqualOption = loc: defs:
    if length defs == 1 then (head defs).value
    else (foldl' (first: def:
      if def.value != first.value then
        throw "The option `${showOption loc}' has conflicting definition values:${showDefs [ first def ]}\nUse `lib.mkForce value` or `lib.mkDefault value` to change the priority on any of these definitions."
      else first) (head defs) (builtins.tail defs)).value;
  mergeOneOption = loc: defs:
    if length defs == 1 then (head defs).value
    else throw "The option `${showOption loc}' is defined multiple times while it's expected to be unique.\nDefinition values:${showDefs defs}";

  mkOptionType = { name, description ? null, descriptionClass ? null, check ? (_: true), merge ? mergeEqualOption, emptyValue ? { }, ... }:
    { _type = "option-type"; inherit name descriptionClass check merge emptyValue; description = if description == null then name else description; };
  phrase = ok: t: if ok (t.descriptionClass or null) then t.description else "(${t.description})";

  # lib/modules.nix dischargeProperties / pushDownProperties / filterOverrides
  discharge = v:
    if isType "if" v then
      (if isBool v.condition then (if v.condition then discharge v.content else [ ])
       else throw "‘mkIf’ called with a non-Boolean condition")
    else if isType "merge" v then concatMap discharge v.contents
    else if isType "override" v then map (c: v // { content = c; }) (discharge v.content)
    else [ v ];
  pushDown = loc: v:
    if isType "if" v then map (mapAttrs (_: lib.mkIf v.condition)) (pushDown loc v.content)
    else if isType "merge" v then concatMap (pushDown loc) v.contents
    else if isType "override" v then map (mapAttrs (_: lib.mkOverride v.priority)) (pushDown loc v.content)
    else if isAttrs v then [ v ]
    else throw "The option `${showOption loc}' is an option set, but it is defined as a ${typeOf v}.";

  # Check, then merge, the definitions of one option (lib/modules.nix mergeDefinitions).
  mergeDefinitions = loc: type: defs:
    let
      discharged = concatMap (d: map (v: d // { value = v; }) (discharge d.value)) defs;
      prio = d: if isType "override" d.value then d.value.priority else 100;
      highest = foldl' (acc: d: if prio d < acc then prio d else acc) 9999 discharged;
      final = map (d: d // { value = if isType "override" d.value then d.value.content else d.value; })
        (filter (d: prio d == highest) discharged);
      bad = filter (d: !(type.check d.value)) final;
    in
    {
      isDefined = final != [ ];
      value =
        if bad == [ ] then type.merge loc final
        else throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs bad}";
    };

  evalOption = loc: opt: defs:
    let
      type = opt.type or null;
      type' = if type == null then types.unspecified else type;
      r = mergeDefinitions loc type' (defs ++ lib.optional (opt ? default) { file = "the option's default"; value = lib.mkOptionDefault opt.default; });
      value =
        if r.isDefined then r.value
        else if type'.emptyValue ? value then type'.emptyValue.value
        # Thrown when used as a string or printed, as the real option throws when read; a marker
        # so that forcing a whole configuration (nixos.nix) can skip options nothing sets.
        else {
          _type = "stub-undefined";
          __toString = _: throw "The option `${showOption loc}' was accessed but has no value defined. Try setting the option.";
        };
    in
    if (opt.apply or null) != null then opt.apply value else value;

  # Definitions of `name` among definitions of an option set.
  subDefs = defs: name: concatMap (d: if d.value ? ${name} then [ { inherit (d) file; value = d.value.${name}; } ] else [ ]) defs;
  pushAll = loc: defs: concatMap (d: map (v: { inherit (d) file; value = v; }) (pushDown loc d.value)) defs;

  evalTree = loc: opts: defs:
    let pushed = pushAll loc defs; in
    mapAttrs (n: o: if isOption o then evalOption (loc ++ [ n ]) o (subDefs pushed n) else evalTree (loc ++ [ n ]) o (subDefs pushed n)) opts;

  # Every definition must have an option (lib/modules.nix checkUnmatched); true or a throw.
  checkTree = loc: opts: defs:
    let
      pushed = pushAll loc defs;
      names = unique (concatMap (d: attrNames d.value) pushed);
      unmatched = filter (n: !(opts ? ${n})) names;
      first = head unmatched;
    in
    if unmatched != [ ] then
      throw "The option `${showOption (loc ++ [ first ])}' does not exist. Definition values:${showDefs [ (head (subDefs pushed first)) ]}"
    else all (n: isOption opts.${n} || checkTree (loc ++ [ n ]) opts.${n} (subDefs pushed n)) (attrNames opts);

  topKeys = [ "_file" "key" "imports" "options" "config" "meta" "disabledModules" "_class" ];

  evalModules = { modules, prefix ? [ ], specialArgs ? { }, moduleArgs ? { } }:
    let
      allArgs = moduleArgs // specialArgs;
      apply = f: f ({ inherit config options lib; } // specialArgs // intersectAttrs (functionArgs f) allArgs);
      normalize = file: m:
        if !isAttrs m then throw "Module `${file}' is of type ${typeOf m}, but it should be an attribute set or a function." else
        if m ? config || m ? options then
          let extra = filter (k: !(elem k topKeys)) (attrNames m); in
          if extra != [ ] then
            throw "Module `${file}' has an unsupported attribute `${head extra}'. This is caused by introducing a top-level `config' or `options' attribute. Add configuration attributes immediately on the top level instead, or move all of them (namely: ${concatStringsSep " " extra}) into the explicit `config' attribute."
          else { file = m._file or file; imports = m.imports or [ ]; options = m.options or { }; config = m.config or { }; }
        else { file = m._file or file; imports = m.imports or [ ]; options = { }; config = removeAttrs m [ "_file" "key" "imports" "meta" "disabledModules" "_class" ]; };
      collect = file: m:
        let
          fromFile = isPath m || isString m;
          file' = if fromFile then toString m else file;
          m' = if fromFile then import m else m;
          n = normalize file' (if isFunction m' then apply m' else m');
        in
        [ n ] ++ concatMap (collect n.file) n.imports;
      mods = concatMap (collect "<unknown-file>") modules;
      mergeDecls = a: b: a // mapAttrs (k: v: if a ? ${k} && !isOption v && !isOption a.${k} then mergeDecls a.${k} v else v) b;
      options = foldl' (acc: m: mergeDecls acc m.options) { } mods;
      defs = map (m: { inherit (m) file; value = m.config; }) mods;
      config = builtins.seq (checkTree prefix options defs) (evalTree prefix options defs);
    in
    { inherit config options; };

  # lib/types.nix
  types = rec {
    unspecified = mkOptionType { name = "unspecified"; description = "unspecified value"; descriptionClass = "noun"; };
    raw = mkOptionType { name = "raw"; description = "raw value"; descriptionClass = "noun"; merge = mergeOneOption; };
    anything = mkOptionType { name = "anything"; descriptionClass = "noun"; };
    bool = mkOptionType { name = "bool"; description = "boolean"; descriptionClass = "noun"; check = isBool; };
    int = mkOptionType { name = "int"; description = "signed integer"; descriptionClass = "noun"; check = isInt; };
    port = mkOptionType { name = "unsignedInt16"; description = "16 bit unsigned integer; between 0 and 65535 (both inclusive)"; descriptionClass = "noun"; check = x: isInt x && x >= 0 && x <= 65535; };
    str = mkOptionType { name = "str"; description = "string"; descriptionClass = "noun"; check = isString; };
    lines = mkOptionType { name = "separatedString"; description = "strings concatenated with \"\\n\""; descriptionClass = "noun"; check = isString; merge = loc: defs: concatStringsSep "\n" (map (d: d.value) defs); };
    attrs = mkOptionType { name = "attrs"; description = "attribute set"; check = isAttrs; merge = loc: foldl' (res: def: res // def.value) { }; emptyValue.value = { }; };
    # pathWith { absolute = true; }
    path = mkOptionType { name = "path"; description = "absolute path"; descriptionClass = "noun"; check = x: lib.isStringLike x && builtins.substring 0 1 (toString x) == "/"; };
    package = mkOptionType { name = "package"; descriptionClass = "noun"; merge = mergeOneOption;
      check = x: lib.isDerivation x || (isString x && builtins.substring 0 11 x == builtins.storeDir + "/"); };
    enum = values: mkOptionType { name = "enum"; description = "one of ${concatStringsSep ", " (map toJSON values)}"; descriptionClass = "conjunction"; check = v: elem v values; };
    nullOr = t: mkOptionType {
      name = "nullOr"; description = "null or ${phrase (c: c == "noun" || c == "conjunction") t}"; descriptionClass = "conjunction";
      check = x: x == null || t.check x;
      merge = loc: defs:
        let nulls = length (filter (d: d.value == null) defs); in
        if nulls == length defs then null
        else if nulls != 0 then throw "The option `${showOption loc}' is defined both null and not null, in ${concatStringsSep " and " (map (d: "`${d.file}'") defs)}."
        else t.merge loc defs;
      emptyValue.value = null;
    };
    listOf = t: mkOptionType {
      name = "listOf"; description = "list of ${phrase (c: c == "noun" || c == "composite") t}"; descriptionClass = "composite";
      check = isList;
      merge = loc: defs: concatMap (x: x) (lib.imap0 (n: d: concatMap (x: x) (lib.imap0 (m: v:
        let r = mergeDefinitions (loc ++ [ "[definition ${toString (n + 1)}-entry ${toString (m + 1)}]" ]) t [ { inherit (d) file; value = v; } ];
        in if r.isDefined then [ r.value ] else [ ]) d.value)) defs);
      emptyValue.value = [ ];
    };
    attrsOf = t: mkOptionType {
      name = "attrsOf"; description = "attribute set of ${phrase (c: c == "noun" || c == "composite") t}"; descriptionClass = "composite";
      check = isAttrs;
      merge = loc: defs:
        let
          pushed = concatMap (d: map (v: { inherit (d) file; value = v; }) (discharge d.value)) defs;
          names = unique (concatMap (d: attrNames d.value) pushed);
          merged = map (n: { name = n; r = mergeDefinitions (loc ++ [ n ]) t (subDefs pushed n); }) names;
        in
        listToAttrs (map (x: { inherit (x) name; value = x.r.value; }) (filter (x: x.r.isDefined) merged));
      emptyValue.value = { };
    };
    lazyAttrsOf = attrsOf;
    either = a: b: mkOptionType {
      name = "either"; description = "${phrase (c: c == "noun" || c == "conjunction") a} or ${phrase (c: c == "noun" || c == "conjunction" || c == "composite") b}"; descriptionClass = "conjunction";
      check = x: a.check x || b.check x;
      merge = loc: defs: if all (d: a.check d.value) defs then a.merge loc defs else if all (d: b.check d.value) defs then b.merge loc defs else mergeOneOption loc defs;
    };
    oneOf = ts: foldl' either (head ts) (builtins.tail ts);
    functionTo = t: mkOptionType { name = "functionTo"; description = "function that evaluates to a(n) ${phrase (c: c == "noun" || c == "composite") t}"; descriptionClass = "composite"; check = isFunction; merge = mergeOneOption; };
    # A module, merged by importing all definitions (types.deferredModule).
    deferredModule = mkOptionType { name = "deferredModule"; description = "module"; descriptionClass = "noun";
      check = x: isAttrs x || isFunction x || isPath x;
      merge = loc: defs: { imports = map (d: { _file = d.file; imports = [ d.value ]; }) defs; }; };
    # types.submoduleWith { modules = [ m ]; }: the definitions are modules evaluated under `loc`.
    submodule = m: mkOptionType { name = "submodule"; description = "submodule"; descriptionClass = "noun";
      check = x: isAttrs x || isFunction x || isPath x;
      merge = loc: defs: (evalModules {
        modules = [ m ] ++ map (d: { _file = d.file; imports = [ d.value ]; }) defs;
        prefix = loc;
        moduleArgs.name = lib.last loc;
      }).config;
      emptyValue.value = { }; };
  };
in
{
  inherit types evalModules showOption mergeEqualOption mergeOneOption mkOptionType;

  # lib/options.nix mkOption: the same closed argument set, so an unknown attribute fails the
  # way the real one does ("called with unexpected argument").
  mkOption =
    { default ? null, defaultText ? null, example ? null, description ? null, relatedPackages ? null,
      type ? null, apply ? null, internal ? null, visible ? null, readOnly ? null }@attrs:
    attrs // { _type = "option"; };
  mkEnableOption = name: lib.mkOption { default = false; example = true; description = "Whether to enable ${name}."; type = types.bool; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOptionDefault = lib.mkOverride 1500;
  mkDefault = lib.mkOverride 1000;
  mkForce = lib.mkOverride 50;
  last = xs: builtins.elemAt xs (length xs - 1);
}
