# Eval-only stand-in for nixpkgs (tests/offline.sh tier 3): every builder returns a trivial
# derivation that remembers its arguments in `stubArgs`, so tests can check the wiring offline.
{
  outputs = { self }:
    let
      drv = system: name: args: builtins.derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo ${name} > $out" ];
      } // { stubArgs = args; version = args.version or "0.0.0"; };
      pkgsFor = system: let pkg = name: drv system name { }; drv' = drv system; in {
        runCommand = name: args: script: drv' name (args // { inherit script; });
        dockerTools = {
          buildLayeredImage = args: drv' "image-${args.name}" args;
          caCertificates = pkg "ca-certificates";
        };
        testers.runNixOSTest = args: drv' "vm-${args.name}" args;
        stdenv.hostPlatform.system = system;
        lib = {
          fileset = {
            toSource = args: pkg "source";
            unions = xs: xs;
            fileFilter = f: root: root;
          };
          optionalString = c: s: if c then s else "";
          optionalAttrs = c: a: if c then a else { };
          mkIf = c: v: v;
          mkOption = o: o;
          mkEnableOption = d: { description = d; };
          literalExpression = e: e;
          getExe = p: "${p}/bin/omnia";
          types = { package = "package"; path = "path"; str = "str"; nullOr = t: t; attrsOf = t: t; listOf = t: t; };
        };
      } // builtins.listToAttrs (map (n: { name = n; value = pkg n; })
        [ "redis" "nats-server" "natscli" "cargo-nextest" "wrk" "skopeo" "umoci" "pkg-config" "curl" ]);
    in
    {
      legacyPackages = builtins.listToAttrs (map (s: { name = s; value = pkgsFor s; }) [ "x86_64-linux" "aarch64-linux" ]);
    };
}
