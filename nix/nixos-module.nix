# `services.omnia`: one Omnia serving one component or one application, as a hardened systemd
# service.
#
#   services.omnia = {
#     enable = true;
#     package = omnia.packages.x86_64-linux.omnia-http-kv;
#     component = ./app.bin;                     # a .wasm for JIT profiles, a .bin for AOT ones,
#                                                # or ./app: a directory holding an omnia.toml and
#                                                # the components it names (an application)
#     listen = "0.0.0.0:8080";
#     environment.OMNIA_REDIS_PREFIX = "app1:";
#     environmentFile = "/run/secrets/omnia.env"; # REDIS_URL=redis://:password@... (secrets)
#   };
{ self }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.omnia;
  inherit (lib) mkOption types;
in
{
  options.services.omnia = {
    enable = lib.mkEnableOption "Omnia, a runtime for WebAssembly components";
    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      defaultText = lib.literalExpression "omnia.packages.\${system}.omnia-full";
      description = "The Omnia build (profile) to run.";
    };
    component = mkOption {
      type = types.path;
      description = "The component: a .wasm (JIT profiles) or a .bin from `omnia compile` of the same version (AOT-only profiles); or an application: its omnia.toml, or a directory holding it and the components it names (relative source paths are kept in the store copy).";
    };
    listen = mkOption {
      type = types.str;
      default = "127.0.0.1:8080";
      description = "HTTP listen address (OMNIA_HTTP_ADDR).";
    };
    adminListen = mkOption {
      type = types.nullOr types.str;
      default = "127.0.0.1:9090";
      description = "Address of /livez, /readyz and /metrics (OMNIA_ADMIN_ADDR); null turns it off.";
    };
    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      description = "More settings (see the README's configuration table), e.g. REDIS_URL without a password.";
    };
    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A file of KEY=VALUE lines for secrets (REDIS_URL or NATS_URL with credentials), kept out of the Nix store.";
    };
    after = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "redis.service" ];
      description = "Units the service starts after (and wants), such as its backends.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.omnia = {
      description = "Omnia WebAssembly runtime";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ] ++ cfg.after;
      wants = [ "network-online.target" ] ++ cfg.after;
      startLimitIntervalSec = 0;
      environment = {
        OMNIA_HTTP_ADDR = cfg.listen;
        OMNIA_COMPILE_CACHE = "/var/cache/omnia";
        RUST_LOG = "info";
      } // lib.optionalAttrs (cfg.adminListen != null) { OMNIA_ADMIN_ADDR = cfg.adminListen; }
        // cfg.environment;
      serviceConfig = {
        ExecStart = "${lib.getExe cfg.package} run ${cfg.component}";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        # A backend that is not up yet makes Omnia exit at start: retry every 2 s for as long
        # as it takes (no start limit, which would otherwise give up after 5 tries in 10 s).
        Restart = "on-failure";
        RestartSec = "2s";
        # Omnia drains for OMNIA_SHUTDOWN_GRACE (30 s) on SIGTERM.
        KillSignal = "SIGTERM";
        TimeoutStopSec = "40s";
        DynamicUser = true;
        CacheDirectory = "omnia";
        LimitNOFILE = 65536;
        # Hardening. Not MemoryDenyWriteExecute: wasmtime maps the compiled guest code executable.
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        UMask = "0077";
      };
    };
  };
}
