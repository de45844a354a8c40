# A NixOS VM test per profile that needs a service: real `services.redis` / `services.nats`
# (JetStream), the `services.omnia` module serving the key-value guest, curl through it, and the
# data read back with the services' own clients.
{ pkgs, self }:
{
  test = { profile, package, app }:
    let
      has = service: builtins.elem service profile.services;
      # A profile with Redis uses it; one with only NATS uses NATS.
      backend = if has "redis" then "redis" else "nats";
      readBack = {
        redis = "redis-cli GET default:hits";
        nats = "nats --server nats://127.0.0.1:4222 kv get default hits --raw";
      }.${backend};
    in
    pkgs.testers.runNixOSTest {
      name = "omnia-${profile.name}";
      nodes.machine = { pkgs, ... }: {
        imports = [ self.nixosModules.default ];
        services.redis.servers."".enable = has "redis";
        services.nats = {
          enable = has "nats";
          jetstream = true;
        };
        services.omnia = {
          enable = true;
          inherit package;
          component = app;
          listen = "127.0.0.1:8080";
          after = (if has "redis" then [ "redis.service" ] else [ ]) ++ (if has "nats" then [ "nats.service" ] else [ ]);
          environment =
            if backend == "redis" then { REDIS_URL = "redis://127.0.0.1:6379"; }
            else {
              OMNIA_KEYVALUE = "nats";
              NATS_URL = "nats://127.0.0.1:4222";
              OMNIA_NATS_KV_CREATE = "true";
            };
        };
        environment.systemPackages = [ pkgs.curl pkgs.redis pkgs.natscli ];
      };
      testScript = ''
        machine.wait_for_unit("omnia.service")
        machine.wait_for_open_port(8080)
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:9090/readyz")
        with subtest("a counter through the guest lands in ${backend}"):
            machine.succeed("curl -sf -X POST http://127.0.0.1:8080/incr//hits | grep -x 1")
            machine.succeed("curl -sf -X POST http://127.0.0.1:8080/incr//hits | grep -x 2")
            machine.succeed("${readBack} | grep -x 2")
        with subtest("SIGTERM drains and stops cleanly"):
            machine.succeed("systemctl stop omnia.service")
            machine.fail("systemctl is-failed omnia.service")
      '';
    };
}
