# Unit tests of nix/lib/profiles.nix, with builtins only:
#   nix-instantiate --eval --strict --json nix/tests/unit.nix   →   { "passed": N, "failed": [ ] }
let
  P = import ../lib/profiles.nix;
  ps = P.loadProfiles ../../profiles;
  # Whether evaluating `e` fails (a `throw` or a failed `assert`).
  throws = e: !(builtins.tryEval (builtins.deepSeq e e)).success;
  profile = raw: P.mkProfile "test" raw;
  base = { description = "d"; jit = true; capabilities.http = true; };

  tests = {
    namesFromFiles = { expr = builtins.attrNames ps; expected = [ "full" "http" "http-kv" "http-otel" "kv-nats" "messaging" ]; };
    fullFeatures = { expr = ps.full.features; expected = [ "config" "http" "jit" "keyvalue" "keyvalue-nats" "keyvalue-redis" "messaging" "messaging-nats" "otel" "sql" ]; };
    messagingProfile = { expr = [ ps.messaging.features ps.messaging.services ]; expected = [ [ "http" "jit" "keyvalue-nats" "messaging-nats" ] [ "nats" ] ]; };
    fullServices = { expr = ps.full.services; expected = [ "nats" "redis" ]; };
    httpKvIsAotOnly = { expr = ps.http-kv.features; expected = [ "http" "keyvalue-redis" ]; };
    httpKvCargoArgs = {
      expr = ps.http-kv.cargoExtraArgs;
      expected = "--locked -p omnia-cli --no-default-features --features http,keyvalue-redis";
    };
    httpHasNoServices = { expr = [ ps.http.services ps.http.vmTestName ]; expected = [ [ ] null ]; };
    kvNatsNeedsNats = { expr = [ ps.kv-nats.services ps.kv-nats.vmTestName ]; expected = [ [ "nats" ] "vm-kv-nats" ]; };
    trueIsTheDefaultBackend = { expr = (profile (base // { capabilities = { http = true; keyvalue = true; }; })).features; expected = [ "http" "jit" "keyvalue" ]; };
    falseIsOff = { expr = (profile (base // { capabilities = { http = true; keyvalue = false; }; })).backends; expected = { http = [ "default" ]; }; };
    imageOfAJitProfile = {
      expr = { inherit (ps.http.image) Entrypoint Cmd User ExposedPorts Env; };
      expected = {
        Entrypoint = [ "/bin/omnia" "run" ];
        Cmd = [ "/app.wasm" ];
        User = "10001:10001";
        ExposedPorts = { "8080/tcp" = { }; };
        Env = [ "OMNIA_HTTP_ADDR=0.0.0.0:8080" ];
      };
    };
    imageOfAnAotProfileRunsABin = { expr = ps.http-kv.image.Cmd; expected = [ "/app.bin" ]; };
    envIsSorted = { expr = ps.kv-nats.image.Env; expected = [ "OMNIA_HTTP_ADDR=0.0.0.0:8080" "OMNIA_KEYVALUE=nats" ]; };
    labelsExtendTheDefaults = {
      expr = (profile (base // { oci.labels.team = "web"; })).image.Labels;
      expected = {
        "org.opencontainers.image.title" = "omnia-test";
        "org.opencontainers.image.description" = "d";
        "org.opencontainers.image.licenses" = "Apache-2.0";
        team = "web";
      };
    };
    outputNames = {
      expr = P.outputNames ps;
      expected = {
        packages = [ "default" "oci-full" "oci-http" "oci-http-kv" "oci-http-otel" "oci-kv-nats" "oci-messaging" "omnia-full" "omnia-http" "omnia-http-kv" "omnia-http-otel" "omnia-kv-nats" "omnia-messaging" ];
        apps = [ "default" "omnia-full" "omnia-http" "omnia-http-kv" "omnia-http-otel" "omnia-kv-nats" "omnia-messaging" ];
        checks = [ "clippy-full" "clippy-http" "clippy-http-kv" "clippy-http-otel" "clippy-kv-nats" "clippy-messaging" "fmt" "nix-unit" "tests" "toolchain" "vm-full" "vm-http-kv" "vm-kv-nats" "vm-messaging" ];
      };
    };
    featuresAreDeclaredInCargoToml = { expr = throws (P.checkFeatures ../../crates/omnia-cli/Cargo.toml ps); expected = false; };
    undeclaredFeatureIsRefused = {
      expr = throws (P.checkFeatures ../../crates/omnia-cli/Cargo.toml { x = { features = [ "teleport" ]; }; });
      expected = true;
    };
    rejectsUnknownTopLevelKey = { expr = throws (profile (base // { jitt = true; })); expected = true; };
    rejectsUnknownCapability = { expr = throws (profile (base // { capabilities = { http = true; database = true; }; })); expected = true; };
    rejectsUnknownBackend = { expr = throws (profile (base // { capabilities = { http = true; keyvalue = "etcd"; }; })); expected = true; };
    rejectsEmptyBackendList = { expr = throws (profile (base // { capabilities = { http = true; keyvalue = [ ]; }; })); expected = true; };
    rejectsNoCapability = { expr = throws (profile (base // { capabilities = { http = false; }; })); expected = true; };
    rejectsMissingJit = { expr = throws (profile { description = "d"; capabilities.http = true; }); expected = true; };
    rejectsBadName = { expr = throws (P.mkProfile "Bad_Name" base); expected = true; };
    rejectsUnknownOciKey = { expr = throws (profile (base // { oci.volumes = [ ]; })); expected = true; };
    rejectsBadPort = { expr = throws (profile (base // { oci.ports = [ 70000 ]; })); expected = true; };
    rejectsNonStringEnv = { expr = throws (profile (base // { oci.env.X = 1; })); expected = true; };
  };
  failed = builtins.filter (n: tests.${n}.expr != tests.${n}.expected) (builtins.attrNames tests);
in
{
  passed = builtins.length (builtins.attrNames tests) - builtins.length failed;
  failed = map (n: { test = n; got = tests.${n}.expr; expected = tests.${n}.expected; }) failed;
}
