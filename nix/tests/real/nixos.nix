# The NixOS options Omnia's module and VM tests set, declared with their NixOS types, and the
# unit file NixOS writes for a service; evaluated by the real `lib.evalModules`.
#
# Mirrors nixpkgs 25.11 (only lib/ is checked out, so these few declarations are copied):
#   nixos/lib/systemd-unit-options.nix   unitOption, service options, checkService
#   nixos/lib/systemd-lib.nix            unitConfig, serviceConfig, attrsToSection, serviceToUnit
#   nixos/modules/system/boot/systemd.nix  systemd.services, systemd.globalEnvironment
#   nixos/modules/system/etc/etc.nix     environment.etc (its options, and the arguments its `etc`
#                                        derivation's makeEtcEntry gets for each file)
#   nixos/modules/config/users-groups.nix  users.users / users.groups (the options used)
#   nixos/modules/services/databases/redis.nix, services/networking/nats.nix (enable & co.)
# Everything else a full NixOS evaluation would check is out of reach here.
{ lib, pkgs }:
let
  inherit (lib) mkOption types optionalAttrs optionalString concatStrings concatLists
    mapAttrsToList concatMapStrings attrNames isList mkIf mkAfter;

  # systemd-lib.nix
  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  toOption = x: if x == true then "true" else if x == false then "false" else toString x;
  attrsToSection = as: concatStrings (concatLists (mapAttrsToList
    (name: value: map (x: "${name}=${toOption x}\n") (if isList value then value else [ value ]))
    as));
  checkUnitConfig = group: checks: attrs:
    let
      defs = lib.mapAttrs (_: v: if v._type or "" == "override" || v._type or "" == "if" then v.content else v) attrs;
      errors = lib.concatMap (c: c group defs) checks;
    in
    if errors == [ ] then true else builtins.trace (lib.concatStringsSep "\n" errors) false;
  assertValueOneOf = name: values: group: attr:
    lib.optional (attr ? ${name} && !lib.elem attr.${name} values)
      "Systemd ${group} field `${name}' cannot have value `${toString attr.${name}}'.";

  # systemd-lib.nix makeJobScript (enableStrictShellChecks = false, NixOS's default)
  makeJobScript = name: text:
    let scriptName = builtins.replaceStrings [ "\\" "@" ] [ "-" "_" ] name; in
    lib.getExe ((pkgs.writeShellScriptBin scriptName ''
      set -e

      ${text}
    '').overrideAttrs (_: { name = "unit-script-${scriptName}"; }));

  # systemd-unit-options.nix
  checkService = checkUnitConfig "Service" [
    (assertValueOneOf "Type" [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle" ])
    (assertValueOneOf "Restart" [ "no" "on-success" "on-failure" "on-abnormal" "on-abort" "on-watchdog" "always" ])
  ];
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      let defs' = lib.filterOverrides defs; in
      if isList (lib.head defs').value then lib.concatMap (def: def.value) defs'
      else lib.mergeEqualOption loc defs';
  };
  listOfUnits = mkOption { default = [ ]; type = types.listOf unitNameType; };
  # systemd-lib.nix unitConfig: X-Restart-Triggers / X-Reload-Triggers name a file of the
  # triggers (paths as their store copies), so a changed trigger changes that line.
  triggers = name: xs: "${pkgs.writeText name (lib.pipe xs [
    lib.flatten
    (map (x: if lib.isPath x then "${x}" else x))
    toString
  ])}";

  # nixos/modules/system/etc/etc.nix, environment.etc's submodule (nixpkgs since 24.11, read from
  # forks of 2025-2026: the locked revision's file is not readable here; descriptions left out).
  etcModule = { config, options, name, ... }: {
    options = {
      enable = mkOption { default = true; type = types.bool; };
      gid = mkOption { default = 0; type = types.int; };
      group = mkOption { default = "+${toString config.gid}"; type = types.str; };
      mode = mkOption { default = "symlink"; example = "0600"; type = types.str; };
      source = mkOption { type = types.path; };
      target = mkOption { type = types.str; };
      text = mkOption { default = null; type = types.nullOr types.lines; };
      uid = mkOption { default = 0; type = types.int; };
      user = mkOption { default = "+${toString config.uid}"; type = types.str; };
    };
    config = {
      source = lib.mkIf (config.text != null) (
        let name' = "etc-" + lib.replaceStrings [ "/" ] [ "-" ] name; in
        lib.mkDerivedConfig options.text (pkgs.writeText name')
      );
      target = lib.mkDefault name;
    };
  };

  serviceModule = { name, config, options, ... }: {
    options = {
      enable = mkOption { default = true; type = types.bool; };
      description = mkOption { default = ""; type = types.singleLineStr; };
      documentation = mkOption { default = [ ]; type = types.listOf types.str; };
      wantedBy = listOfUnits;
      requiredBy = listOfUnits;
      requires = listOfUnits;
      wants = listOfUnits;
      after = listOfUnits;
      before = listOfUnits;
      bindsTo = listOfUnits;
      partOf = listOfUnits;
      conflicts = listOfUnits;
      onFailure = listOfUnits;
      unitConfig = mkOption { default = { }; type = types.attrsOf unitOption; };
      startLimitBurst = mkOption { type = types.int; };
      startLimitIntervalSec = mkOption { type = types.int; };
      restartTriggers = mkOption { default = [ ]; type = types.listOf types.unspecified; };
      reloadTriggers = mkOption { default = [ ]; type = types.listOf unitOption; };
      restartIfChanged = mkOption { default = true; type = types.bool; };
      reloadIfChanged = mkOption { default = false; type = types.bool; };
      stopIfChanged = mkOption { default = true; type = types.bool; };
      environment = mkOption { default = { }; type = with types; attrsOf (nullOr (oneOf [ str path package ])); };
      path = mkOption { default = [ ]; type = with types; listOf (oneOf [ package str ]); };
      serviceConfig = mkOption { default = { }; type = types.addCheck (types.attrsOf unitOption) checkService; };
      script = mkOption { type = types.lines; default = ""; };
      scriptArgs = mkOption { type = types.str; default = ""; };
      preStart = mkOption { type = types.lines; default = ""; };
      postStart = mkOption { type = types.lines; default = ""; };
      jobScripts = mkOption { type = with types; coercedTo path lib.singleton (listOf path); internal = true; default = [ ]; };
    };
    config = lib.mkMerge [
      # systemd-unit-options.nix serviceOptions
      (mkIf (config.preStart != "") rec {
        jobScripts = makeJobScript "${name}-pre-start" config.preStart;
        serviceConfig.ExecStartPre = [ jobScripts ];
      })
      (mkIf (config.script != "") rec {
        jobScripts = makeJobScript "${name}-start" config.script;
        serviceConfig.ExecStart = jobScripts + " " + config.scriptArgs;
      })
      (mkIf (config.postStart != "") rec {
        jobScripts = makeJobScript "${name}-post-start" config.postStart;
        serviceConfig.ExecStartPost = [ jobScripts ];
      })
      {
      # systemd-lib.nix unitConfig
      unitConfig =
        optionalAttrs (config.requires != [ ]) { Requires = toString config.requires; }
        // optionalAttrs (config.wants != [ ]) { Wants = toString config.wants; }
        // optionalAttrs (config.after != [ ]) { After = toString config.after; }
        // optionalAttrs (config.before != [ ]) { Before = toString config.before; }
        // optionalAttrs (config.bindsTo != [ ]) { BindsTo = toString config.bindsTo; }
        // optionalAttrs (config.partOf != [ ]) { PartOf = toString config.partOf; }
        // optionalAttrs (config.conflicts != [ ]) { Conflicts = toString config.conflicts; }
        // optionalAttrs (config.restartTriggers != [ ]) { X-Restart-Triggers = triggers "X-Restart-Triggers-${name}" config.restartTriggers; }
        // optionalAttrs (config.reloadTriggers != [ ]) { X-Reload-Triggers = triggers "X-Reload-Triggers-${name}" config.reloadTriggers; }
        // optionalAttrs (config.description != "") { Description = config.description; }
        // optionalAttrs (config.onFailure != [ ]) { OnFailure = toString config.onFailure; }
        // optionalAttrs options.startLimitIntervalSec.isDefined { StartLimitIntervalSec = toString config.startLimitIntervalSec; }
        // optionalAttrs options.startLimitBurst.isDefined { StartLimitBurst = toString config.startLimitBurst; };
      # systemd-lib.nix serviceConfig + stage2ServiceConfig
      environment.PATH = mkIf (config.path != [ ])
        "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}";
      path = mkAfter [ pkgs.coreutils pkgs.findutils pkgs.gnugrep pkgs.gnused pkgs.systemd ];
      }
    ];
  };

  declarations = { config, ... }: {
    options = {
      systemd.services = mkOption { default = { }; type = types.attrsOf (types.submodule serviceModule); };
      systemd.globalEnvironment = mkOption { default = { }; type = with types; attrsOf (nullOr (oneOf [ str path package ])); };
      users.users = mkOption {
        default = { };
        type = types.attrsOf (types.submodule ({ name, ... }: {
          options = {
            name = mkOption { type = types.str; default = name; };
            uid = mkOption { type = types.nullOr types.int; default = null; };
            group = mkOption { type = types.str; default = ""; };
            isSystemUser = mkOption { type = types.bool; default = false; };
            isNormalUser = mkOption { type = types.bool; default = false; };
            home = mkOption { type = types.path; default = "/var/empty"; };
            createHome = mkOption { type = types.bool; default = false; };
            description = mkOption { type = types.str; default = ""; };
            extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
          };
        }));
      };
      users.groups = mkOption {
        default = { };
        type = types.attrsOf (types.submodule ({ name, ... }: {
          options = {
            name = mkOption { type = types.str; default = name; };
            gid = mkOption { type = types.nullOr types.int; default = null; };
            members = mkOption { type = types.listOf types.str; default = [ ]; };
          };
        }));
      };
      services.redis.servers = mkOption {
        default = { };
        type = types.attrsOf (types.submodule {
          options.enable = lib.mkEnableOption "Redis server";
          options.port = mkOption { type = types.port; default = 6379; };
          options.bind = mkOption { type = types.nullOr types.str; default = "127.0.0.1"; };
        });
      };
      services.nats = {
        enable = lib.mkEnableOption "NATS messaging system";
        jetstream = lib.mkEnableOption "JetStream";
        port = mkOption { type = types.port; default = 4222; };
        # (pkgs.formats.json's type: JSON values)
        settings = mkOption { type = types.attrsOf types.anything; default = { }; };
      };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      environment.etc = mkOption { default = { }; type = types.attrsOf (types.submodule etcModule); };
      networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; internal = true; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; internal = true; };
    };
  };

  # systemd-lib.nix serviceToUnit (the text; NixOS writes it to <name>.service).
  serviceToUnit = cfg: name: def:
    let env = cfg.systemd.globalEnvironment // def.environment; in
    ''
      [Unit]
      ${attrsToSection def.unitConfig}
    ''
    + ''
      [Service]
    ''
    + concatMapStrings (n: optionalString (env.${n} != null) "Environment=${builtins.toJSON "${n}=${env.${n}}"}\n") (attrNames env)
    + (if def.reloadIfChanged then "X-ReloadIfChanged=true\n"
       else optionalString (!def.restartIfChanged) "X-RestartIfChanged=false\n")
    + optionalString (!def.stopIfChanged) "X-StopIfChanged=false\n"
    + attrsToSection def.serviceConfig
    + optionalString (def.wantedBy != [ ]) ''

      [Install]
      WantedBy=${lib.concatStringsSep " " def.wantedBy}
    '';
in
{
  # A NixOS-like evaluation of `modules`: config, the unit texts, and failed assertions.
  eval = modules:
    let
      result = lib.evalModules {
        modules = [ declarations { _module.args = { inherit pkgs; }; } ] ++ modules;
      };
      cfg = result.config;
    in
    {
      inherit (result) config options;
      units = lib.mapAttrs (serviceToUnit cfg) (lib.filterAttrs (_: s: s.enable) cfg.systemd.services);
      # etc.nix: what its `etc` derivation gets for each enabled file (makeEtcEntry's source,
      # "${source}" copying a local path to the store, target, mode), by target.
      etc = lib.listToAttrs (map (f: { name = f.target; value = { source = "${f.source}"; inherit (f) mode; }; })
        (lib.filter (f: f.enable) (lib.attrValues cfg.environment.etc)));
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);
    };
}
