# The profiles of the Omnia distribution, read with builtins only (no nixpkgs), so that the
# flake's output names and every decision about a profile can be evaluated and tested offline.
#
# A profile is `profiles/<name>.toml` (schema in profiles/README.md). This file turns it into
# what the flake builds: the cargo features of the `omnia` binary, the services its VM test
# needs, the output names, and the OCI image configuration. The Rust tool (`cargo xtask`) reads
# the same files the same way; a test compares the two readings.
let
  inherit (builtins)
    attrNames concatMap concatStringsSep elem filter foldl' fromTOML hasAttr isBool isInt isList
    isString isAttrs length listToAttrs match readDir readFile sort substring stringLength throw
    toString typeOf;

  # Every capability, its backends, and what each backend needs (cargo features of
  # crates/omnia-cli, services a test must start): one table, next to the Cargo.toml that
  # declares those features, read by this file and by `cargo xtask` alike.
  catalog = fromTOML (readFile ../../crates/omnia-cli/capabilities.toml);

  # The image every profile shares: a numeric non-root user, entry point `omnia run`.
  imageUser = "10001:10001";
  imageCreated = "1970-01-01T00:00:01Z";

  topKeys = [ "description" "jit" "capabilities" "oci" ];
  ociKeys = [ "ports" "env" "labels" ];

  sortUnique = xs: foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ] (sort (a: b: a < b) xs);

  # The first element of `xs` not in `allowed`, or null.
  firstUnknown = allowed: xs: let bad = filter (x: !(elem x allowed)) xs; in if bad == [ ] then null else builtins.head bad;

  fail = file: key: msg: throw "${file}: ${key}: ${msg}";

  # The backends `value` selects for capability `cap` (a list of backend names).
  backendsOf = file: cap: value:
    let
      known = attrNames catalog.${cap}.backends;
      check = b:
        if !(isString b) then fail file "capabilities.${cap}" "expected a backend name, got a ${typeOf b}"
        else if !(hasAttr b catalog.${cap}.backends)
        then fail file "capabilities.${cap}" "unknown backend \"${b}\" (expected one of ${concatStringsSep ", " known})"
        else b;
    in
    if value == true then [ catalog.${cap}.default ]
    else if value == false then [ ]
    else if isString value then [ (check value) ]
    else if isList value then
      (if value == [ ] then fail file "capabilities.${cap}" "an empty list enables nothing: use false"
       else map check value)
    else fail file "capabilities.${cap}" "expected true, false, a backend name or a list of them, got a ${typeOf value}";

  checkStrings = file: key: attrs:
    if !(isAttrs attrs) then fail file key "expected a table of strings"
    else foldl' (ok: k: if isString attrs.${k} then ok else fail file "${key}.${k}" "expected a string") true (attrNames attrs);

  checkPorts = file: ports:
    if !(isList ports) then fail file "oci.ports" "expected a list of port numbers"
    else foldl' (ok: p: if isInt p && p >= 1 && p <= 65535 then ok else fail file "oci.ports" "expected port numbers from 1 to 65535, got ${toString p}") true ports;

  # A profile from its name and the parsed TOML.
  mkProfile = name: raw:
    let
      file = "profiles/${name}.toml";
      unknownTop = firstUnknown topKeys (attrNames raw);
      caps = raw.capabilities or (fail file "capabilities" "missing: a profile must enable at least one capability");
      unknownCap = firstUnknown (attrNames catalog) (attrNames caps);
      oci = raw.oci or { };
      unknownOci = firstUnknown ociKeys (attrNames oci);
      selected = listToAttrs (map (cap: { name = cap; value = backendsOf file cap caps.${cap}; }) (attrNames caps));
      enabled = filter (cap: selected.${cap} != [ ]) (attrNames selected);
      rows = concatMap (cap: map (b: catalog.${cap}.backends.${b}) selected.${cap}) enabled;
      jit = raw.jit or (fail file "jit" "missing: true (runs .wasm) or false (AOT-only, runs .bin)");
      features = sortUnique ((if jit then [ "jit" ] else [ ]) ++ concatMap (r: r.features) rows);
      services = sortUnique (concatMap (r: r.services) rows);
      env = oci.env or { };
      labels = oci.labels or { };
      ports = oci.ports or [ ];
      description = raw.description or (fail file "description" "missing: one line saying what the profile is for");
    in
    assert match "[a-z0-9]+(-[a-z0-9]+)*" name != null
      || throw "${file}: the profile name \"${name}\" must be kebab-case (a-z, 0-9 and single dashes)";
    assert unknownTop == null || fail file unknownTop "unknown key (expected one of ${concatStringsSep ", " topKeys})";
    assert isString description || fail file "description" "expected a string";
    assert isBool jit || fail file "jit" "expected true or false";
    assert isAttrs caps || fail file "capabilities" "expected a table";
    assert unknownCap == null || fail file "capabilities.${unknownCap}" "unknown capability (expected one of ${concatStringsSep ", " (attrNames catalog)})";
    assert enabled != [ ] || fail file "capabilities" "the profile enables no capability";
    assert isAttrs oci || fail file "oci" "expected a table";
    assert unknownOci == null || fail file "oci.${unknownOci}" "unknown key (expected one of ${concatStringsSep ", " ociKeys})";
    assert checkPorts file ports;
    assert checkStrings file "oci.env" env;
    assert checkStrings file "oci.labels" labels;
    {
      inherit name description jit features services;
      backends = listToAttrs (map (cap: { name = cap; value = sortUnique selected.${cap}; }) enabled);
      cargoArgs = [ "--locked" "-p" "omnia-cli" "--no-default-features" "--features" (concatStringsSep "," features) ];
      cargoExtraArgs = "--locked -p omnia-cli --no-default-features --features ${concatStringsSep "," features}";
      packageName = "omnia-${name}";
      appName = "omnia-${name}";
      ociName = "oci-${name}";
      clippyName = "clippy-${name}";
      vmTestName = if services == [ ] then null else "vm-${name}";
      # The OCI image configuration (the same for the Nix image and `cargo xtask dist`).
      image = {
        Entrypoint = [ "/bin/omnia" "run" ];
        Cmd = [ (if jit then "/app.wasm" else "/app.bin") ];
        Env = map (k: "${k}=${env.${k}}") (sort (a: b: a < b) (attrNames env));
        ExposedPorts = listToAttrs (map (p: { name = "${toString p}/tcp"; value = { }; }) ports);
        User = imageUser;
        WorkingDir = "/";
        Labels = {
          "org.opencontainers.image.title" = "omnia-${name}";
          "org.opencontainers.image.description" = description;
          "org.opencontainers.image.licenses" = "Apache-2.0";
        } // labels;
      };
    };

  hasSuffix = suffix: s:
    let n = stringLength s; m = stringLength suffix; in n >= m && substring (n - m) m s == suffix;
  stem = f: substring 0 (stringLength f - 5) f;

  # Every `*.toml` of `dir`, by name.
  loadProfiles = dir:
    let files = filter (f: hasSuffix ".toml" f) (attrNames (readDir dir)); in
    listToAttrs (map
      (f: {
        name = stem f;
        value = builtins.addErrorContext "while loading profiles/${f}"
          (mkProfile (stem f) (fromTOML (readFile (dir + "/${f}"))));
      })
      files);

  # Fails unless every feature the profiles use is declared in `cargoToml`'s [features].
  checkFeatures = cargoToml: profiles:
    let
      declared = attrNames ((fromTOML (readFile cargoToml)).features or { });
      used = sortUnique (concatMap (p: p.features) (builtins.attrValues profiles));
      missing = filter (f: !(elem f declared)) used;
    in
    if missing == [ ] then profiles
    else throw "crates/omnia-cli/Cargo.toml does not declare the feature(s) ${concatStringsSep ", " missing} that profiles use";

  # The names of the flake's per-profile outputs.
  outputNames = profiles:
    let ps = builtins.attrValues profiles; in {
      packages = sort (a: b: a < b) ([ "default" ] ++ concatMap (p: [ p.packageName p.ociName ]) ps);
      apps = sort (a: b: a < b) ([ "default" ] ++ map (p: p.appName) ps);
      checks = sort (a: b: a < b) ([ "fmt" "tests" "nix-unit" "toolchain" ]
        ++ map (p: p.clippyName) ps
        ++ concatMap (p: if p.vmTestName == null then [ ] else [ p.vmTestName ]) ps);
    };
in
{
  inherit catalog mkProfile loadProfiles checkFeatures outputNames imageUser imageCreated;
}
