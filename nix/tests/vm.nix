# A NixOS VM test per profile that needs a service: real `services.redis` / `services.nats`
# (JetStream), the `services.omnia` module serving the key-value guest, curl through it, and the
# data read back with the services' own clients.
#
# Omnia starts as soon as its backend's unit has started, which (both are `Type=simple`) can be
# before the backend listens: Omnia exits, and the module's restart policy (every 2 s, no start
# limit) brings it back until the backend answers, as it would on a real machine.
#
# The module links the component at /etc/omnia/app.wasm (or app.bin: an AOT-only profile's,
# precompiled in the VM to a path outside the store, which environment.etc links as it is) and
# `systemctl reload` makes Omnia read it again (SIGHUP) without a restart: the counter goes on.
{ pkgs, self }:
{
  # `wasm` is served as it is, or, given a JIT `compiler` (for an AOT-only `package`),
  # precompiled inside the VM first: a `.bin` holds machine code for the CPU it was compiled
  # on, and the builder's CPU may have features the VM's lacks.
  test = { profile, package, wasm, compiler ? null }:
    let
      bin = "/var/lib/omnia-app/kv-http.bin";
      inherit (pkgs.lib) mkIf;
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
        systemd.services.omnia-precompile = mkIf (compiler != null) {
          description = "Precompile the example guest for this machine";
          serviceConfig.Type = "oneshot";
          serviceConfig.RemainAfterExit = true;
          script = ''
            mkdir -p ${dirOf bin}
            ${compiler}/bin/omnia compile ${wasm} -o ${bin}
          '';
        };
        services.omnia = {
          enable = true;
          inherit package;
          component = if compiler == null then wasm else bin;
          listen = "127.0.0.1:8080";
          after = (if has "redis" then [ "redis.service" ] else [ ])
            ++ (if has "nats" then [ "nats.service" ] else [ ])
            ++ (if compiler != null then [ "omnia-precompile.service" ] else [ ]);
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
        with subtest("systemctl reload: Omnia reads the component again, same process, and serves on"):
            pid = machine.succeed("systemctl show --property MainPID --value omnia.service").strip()
            machine.succeed("systemctl reload omnia.service")
            machine.wait_until_succeeds(
                "journalctl -u omnia.service --no-pager | grep -F 'reloaded: 1 guest(s); new work goes to them'"
            )
            machine.succeed(f"test \"$(systemctl show --property MainPID --value omnia.service)\" = {pid}")
            machine.succeed("curl -sf -X POST http://127.0.0.1:8080/incr//hits | grep -x 3")
        with subtest("SIGTERM drains and stops cleanly"):
            machine.succeed("systemctl stop omnia.service")
            machine.fail("systemctl is-failed omnia.service")
      '';
    };
}
