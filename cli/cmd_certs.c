/* autocalib certs new NAME [--dir D]: a CURVE key pair for the farm (czmq
 * zcert files): D/NAME.key holds the secret key (give it to that peer only),
 * D/NAME.pub the public key (copy it into the broker's --curve-dir to admit
 * the peer; remove it there to revoke). */
#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ac_args.h"
#include "ac_cli.h"

static bool name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

int ac_cmd_certs(int argc, char **argv)
{
    const char *dir = ".";
    const ac_arg_spec specs[] = {
        {"dir", NULL, AC_ARG_STRING, &dir, "folder for NAME.key and NAME.pub (default .)"},
    };
    const char *pos[3] = {NULL};
    int npos = 0;
    bool help = false;
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, 1, pos, 3, &npos, &help, &err)) {
        fprintf(stderr, "autocalib certs: %s\n", err.msg);
        return 2;
    }
    const char *usage = "usage: autocalib certs new NAME [--dir D]   (writes D/NAME.key and D/NAME.pub)";
    if (help) {
        ac_args_print_help(usage, specs, 1);
        return 0;
    }
    if (npos != 2 || strcmp(pos[0], "new")) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    if (!name_ok(pos[1])) {
        fprintf(stderr, "autocalib certs: name '%s' must be 1..64 of [A-Za-z0-9._-]\n", pos[1]);
        return 2;
    }
    char key[4096], pub[4096];
    snprintf(key, sizeof key, "%s/%s.key", dir, pos[1]);
    snprintf(pub, sizeof pub, "%s/%s.pub", dir, pos[1]);
    if (access(key, F_OK) == 0 || access(pub, F_OK) == 0) {
        fprintf(stderr, "autocalib certs: %s or %s exists; not overwriting a key pair\n", key, pub);
        return 1;
    }
    if (zsys_dir_create("%s", dir) != 0)
        return ac_cli_fail("certs", "cannot create the output folder");
    zcert_t *cert = zcert_new();
    if (!cert)
        return ac_cli_fail("certs", "cannot create a key pair");
    zcert_set_meta(cert, "name", "%s", pos[1]);
    mode_t old = umask(077); /* the secret file is private from its first byte */
    int rc = zcert_save_secret(cert, key);
    umask(old);
    rc |= zcert_save_public(cert, pub);
    if (rc == 0)
        chmod(key, 0600);
    printf("%s  secret: give it to this peer only (--curve-key)\n%s  public: %s\n", key, pub,
           zcert_public_txt(cert));
    zcert_destroy(&cert);
    if (rc)
        return ac_cli_fail("certs", "cannot write the key files");
    return 0;
}
