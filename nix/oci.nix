# The OCI image of a profile: `dockerTools.buildLayeredImage` with the configuration the profile
# library computes (the same as `cargo xtask dist` writes), a numeric non-root user, CA
# certificates, a reproducible `created`, and `/bin/omnia` as the entry point.
{ pkgs, P, self }:
let
  users = pkgs.runCommand "omnia-users" { } ''
    mkdir -p $out/etc
    printf 'root:x:0:0:root:/:/sbin/nologin\nomnia:x:10001:10001:omnia:/:/sbin/nologin\n' > $out/etc/passwd
    printf 'root:x:0:\nomnia:x:10001:\n' > $out/etc/group
  '';
in
{
  # `app`, if given, is copied to /app.wasm (JIT profiles) or /app.bin (AOT-only profiles).
  image = { profile, package, app ? null }:
    pkgs.dockerTools.buildLayeredImage {
      name = "omnia-${profile.name}";
      tag = package.version;
      created = P.imageCreated;
      contents = [ package pkgs.dockerTools.caCertificates users ];
      fakeRootCommands = ''
        mkdir -p tmp && chmod 1777 tmp
      '' + pkgs.lib.optionalString (app != null) ''
        cp ${app} .${builtins.head profile.image.Cmd}
      '';
      config = profile.image // {
        Labels = profile.image.Labels // {
          "org.opencontainers.image.version" = package.version;
          "org.opencontainers.image.revision" = self.rev or "dirty";
        };
      };
    };
}
