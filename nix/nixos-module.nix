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
#
# A new component is a reload, not a restart. The component is linked at /etc/omnia/app.wasm,
# /etc/omnia/app.bin or /etc/omnia/app (environment.etc), a path that is the same in every
# generation, and the unit runs `omnia run` on that path. So a generation with another component
# changes nothing in the unit but its reload trigger, and switching to it reloads the service
# (SIGHUP, as `systemctl reload omnia` does): Omnia reads, compiles and checks the new component
# while the old one serves, requests in flight finish on the old one, and one that fails to load
# leaves the old one serving (the error is logged and shown on /readyz). What a reload cannot
# change needs `systemctl restart omnia`: a trigger or backend that no guest used at start-up,
# a memory limit above the largest one at start-up (Omnia logs which, and keeps the old version
# serving). A new package or any other setting changes the unit, and
# switching restarts it.
{ self }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.omnia;
  inherit (lib) mkOption types;
  # Where the component is linked under /etc: a name that is the same in every generation and
  # keeps the component's kind: app.wasm, app.bin, or app for a directory (an application, which
  # `omnia run` finds by the omnia.toml in it).
  linked =
    let path = toString cfg.component; in
    if lib.hasSuffix ".wasm" path then "omnia/app.wasm"
    else if lib.hasSuffix ".bin" path then "omnia/app.bin"
    else "omnia/app";
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
      description = "The component: a .wasm (JIT profiles) or a .bin from `omnia compile` of the same version (AOT-only profiles); or an application: the directory holding its omnia.toml and the components it names (copied to the store as a whole: relative source paths must stay inside it; a lone omnia.toml is refused, as its relative paths would resolve beside its link). Linked at /etc/omnia/app.wasm, app.bin or app, which the service runs: a new component in a new generation reloads the service (SIGHUP; the old version serves until the new one is ready, and on if it fails) instead of restarting it. A path outside the Nix store (a string) is linked as it is: replacing that file changes no generation, so reload by hand (`systemctl reload omnia`).";
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
    assertions = [ {
      assertion = !lib.hasSuffix ".toml" (toString cfg.component);
      message = "services.omnia.component is a manifest (${toString cfg.component}): give the directory holding it, with the components it names (a manifest written by Nix: pkgs.writeTextDir \"omnia.toml\" ...). Omnia resolves a manifest's relative source paths in the manifest's own directory.";
    } ];

    environment.etc.${linked}.source = cfg.component;

    systemd.services.omnia = {
      description = "Omnia WebAssembly runtime";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ] ++ cfg.after;
      wants = [ "network-online.target" ] ++ cfg.after;
      startLimitIntervalSec = 0;
      # ExecStart names /etc/omnia/..., so a new component changes only this: NixOS's
      # switch-to-configuration reloads a unit whose reload triggers alone changed.
      reloadTriggers = [ cfg.component ];
      environment = {
        OMNIA_HTTP_ADDR = cfg.listen;
        OMNIA_COMPILE_CACHE = "/var/cache/omnia";
        RUST_LOG = "info";
      } // lib.optionalAttrs (cfg.adminListen != null) { OMNIA_ADMIN_ADDR = cfg.adminListen; }
        // cfg.environment;
      serviceConfig = {
        ExecStart = "${lib.getExe cfg.package} run /etc/${linked}";
        # Omnia reloads its application on SIGHUP (`systemctl reload omnia`, and a switch to a
        # generation with another component).
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
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
