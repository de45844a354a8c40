# `pkgs.testers.runNixOSTest` and the NixOS options the flake's module and VM tests set, put
# through the module system of ./modules.nix, so an undeclared option, a value of the wrong type
# or a non-Boolean mkIf fails here as it would in NixOS.
#
# The locked nixpkgs (NixOS/nixpkgs 8fd9daa3db09ced9700431c5b7ad0e8ba199b575, nixos-25.11) is not
# readable on this machine; the declarations below are the subset of the real ones the flake
# uses, with their real names, types and defaults as documented for nixos-25.11:
#   runNixOSTest              pkgs/build-support/testers/default.nix -> nixos/lib/testing/*.nix
#                             (a module: name, nodes, defaults, testScript, ...)
#   systemd.services.<name>   nixos/lib/systemd-unit-options.nix, nixos/modules/system/boot/systemd.nix
#   environment.systemPackages nixos/modules/config/system-path.nix
#   environment.etc           nixos/modules/system/etc/etc.nix
#   assertions, warnings      nixos/modules/misc/assertions.nix (a failed assertion fails the
#                             system as nixos/modules/system/activation/top-level.nix does, with
#                             lib/asserts.nix checkAssertWarn's message)
#   services.redis.servers    nixos/modules/services/databases/redis.nix
#   services.nats             nixos/modules/services/networking/nats.nix
#   virtualisation.*          nixos/modules/virtualisation/qemu-vm.nix, podman/default.nix
# An option NixOS has but this list lacks fails with "does not exist": add its declaration here
# (after checking NixOS has it), not a workaround in the flake.
{ lib, pkgs, drv }:
let
  inherit (lib) mkOption types;
  opt = type: default: mkOption { inherit type default; };
  bool = opt types.bool false;
  strs = opt (types.listOf types.str) [ ];
  # nixos/lib/systemd-unit-options.nix unitOption: lists concatenate, other values must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs: if builtins.any (d: builtins.isList d.value) defs
      then builtins.concatMap (d: if builtins.isList d.value then d.value else [ d.value ]) defs
      else lib.mergeEqualOption loc defs;
  };
  unit = opt (types.attrsOf unitOption) { };

  serviceOptions = {
    options = {
      enable = opt types.bool true;
      description = opt types.str "";
      wantedBy = strs; requiredBy = strs; after = strs; before = strs; wants = strs;
      requires = strs; bindsTo = strs; partOf = strs; conflicts = strs;
      environment = opt (types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]))) { };
      path = opt (types.listOf (types.either types.package types.str)) [ ];
      serviceConfig = unit;
      unitConfig = unit;
      script = opt types.lines "";
      preStart = opt types.lines "";
      postStart = opt types.lines "";
      preStop = opt types.lines "";
      postStop = opt types.lines "";
      restartIfChanged = opt types.bool true;
      stopIfChanged = opt types.bool true;
      reloadIfChanged = opt types.bool false;
      restartTriggers = opt (types.listOf types.unspecified) [ ];
      reloadTriggers = opt (types.listOf unitOption) [ ];
      startLimitBurst = mkOption { type = types.int; };
      startLimitIntervalSec = mkOption { type = types.int; };
      reload = opt types.lines "";
      startAt = opt (types.either types.str (types.listOf types.str)) [ ];
    };
  };

  # nixos/modules/system/etc/etc.nix (the same options in nixpkgs since 24.11, read from forks of
  # 2025-2026: the locked revision's file is not readable here). The real `text` becomes `source`
  # through `mkDerivedConfig options.text (pkgs.writeText "etc-<name with - for />")`, at the
  # priority of `text`; here through a stand-in derivation, at a definition's usual priority.
  etcOptions = { name, config, ... }: {
    options = {
      enable = opt types.bool true;
      target = mkOption { type = types.str; };
      text = opt (types.nullOr types.lines) null;
      source = mkOption { type = types.path; };
      mode = opt types.str "symlink";
      uid = opt types.int 0;
      gid = opt types.int 0;
      user = opt types.str "+${toString config.uid}";
      group = opt types.str "+${toString config.gid}";
    };
    config = {
      source = lib.mkIf (config.text != null)
        (drv ("etc-" + builtins.replaceStrings [ "/" ] [ "-" ] name) { } { inherit (config) text; });
      target = lib.mkDefault name;
    };
  };

  nixosOptions = {
    _file = "nix/tests/stubs/nixpkgs/nixos.nix";
    options = {
      systemd.services = opt (types.attrsOf (types.submodule serviceOptions)) { };
      environment.systemPackages = opt (types.listOf types.package) [ ];
      environment.etc = opt (types.attrsOf (types.submodule etcOptions)) { };
      assertions = opt (types.listOf types.unspecified) [ ];
      warnings = opt (types.listOf types.str) [ ];
      environment.variables = opt (types.attrsOf types.str) { };
      networking.hostName = opt types.str "nixos";
      networking.firewall.allowedTCPPorts = opt (types.listOf types.port) [ ];
      system.stateVersion = opt types.str "25.11";
      services.redis.package = opt types.package (drv "redis" { } { });
      services.redis.servers = opt (types.attrsOf (types.submodule {
        options = {
          enable = bool;
          port = opt types.port 6379;
          bind = opt (types.nullOr types.str) "127.0.0.1";
          requirePass = opt (types.nullOr types.str) null;
          requirePassFile = opt (types.nullOr types.path) null;
          databases = opt types.int 16;
          settings = opt types.attrs { };
        };
      })) { };
      services.nats = {
        enable = bool;
        jetstream = bool;
        host = opt types.str "0.0.0.0";
        port = opt types.port 4222;
        serverName = opt types.str "nats";
        user = opt types.str "nats";
        group = opt types.str "nats";
        dataDir = opt types.path "/var/lib/nats";
        settings = opt types.attrs { };
        validateConfig = opt types.bool true;
      };
      virtualisation.memorySize = opt types.int 1024;
      virtualisation.diskSize = opt types.int 1024;
      virtualisation.cores = opt types.int 1;
      virtualisation.podman.enable = bool;
    };
  };

  # nixos/lib/testing: the options of a test.
  testOptions = {
    _file = "nixos/lib/testing (stand-in)";
    options = {
      name = mkOption { type = types.str; };
      nodes = opt (types.lazyAttrsOf types.deferredModule) { };
      defaults = opt types.deferredModule { };
      testScript = mkOption { type = types.either types.str (types.functionTo types.str); };
      extraPythonPackages = opt (types.functionTo (types.listOf types.package)) (_: [ ]);
      skipLint = bool;
      skipTypeCheck = bool;
      enableOCR = bool;
      globalTimeout = opt types.int 3600;
      meta = opt types.attrs { };
      passthru = opt (types.lazyAttrsOf types.raw) { };
      interactive = opt types.deferredModule { };
      node = opt types.attrs { };
      hostPkgs = opt types.raw pkgs;
      sshBackdoor = opt types.attrs { };
      extraDriverArgs = strs;
    };
  };

  # Force what building a node's system would force: its units, packages and services (not
  # options nothing reads). Stops at derivations and functions.
  force = v:
    if lib.isDerivation v || builtins.isFunction v || (v._type or null) == "stub-undefined" then true
    else if builtins.isAttrs v then builtins.all (n: force v.${n}) (builtins.attrNames v)
    else if builtins.isList v then builtins.all force v
    else builtins.seq v true;
in
{
  inherit nixosOptions;

  # pkgs/build-support/testers/default.nix runNixOSTest: the argument is a module.
  runNixOSTest = testModule:
    let
      test = (lib.evalModules {
        modules = [ testOptions { _file = "the argument that was passed to pkgs.runNixOSTest"; imports = [ testModule ]; } ];
      }).config;
      nodes = builtins.mapAttrs (name: node: (lib.evalModules {
        modules = [ nixosOptions test.defaults node ];
        moduleArgs = { inherit pkgs name; };
      }).config) test.nodes;
      # top-level.nix: lib.asserts.checkAssertWarn config.assertions config.warnings.
      failedAssertions = node: map (a: a.message) (builtins.filter (a: !a.assertion) node.assertions);
      assertionsHold = node: failedAssertions node == [ ]
        || throw "\nFailed assertions:\n${builtins.concatStringsSep "\n" (map (m: "- ${m}") (failedAssertions node))}";
      checked = builtins.all (n: assertionsHold nodes.${n} && force { inherit (nodes.${n}) systemd environment services; }) (builtins.attrNames nodes)
        && builtins.isString (if builtins.isFunction test.testScript then test.testScript { inherit nodes; } else "${test.testScript}")
        && builtins.isString "${test.name}";
    in
    # Evaluating the derivation (as nix flake check does) evaluates every node.
    drv "vm-${test.name}" { stubChecked = if checked then "1" else "0"; } testModule // { stubNodes = nodes; };
}
