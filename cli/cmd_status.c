/* autocalib status --broker EP: asks a broker for its STATUS_REPLY
 * (docs/protocol.md §10) and prints it: counters, workers with what they
 * cache, per-job queues and progress, in-flight tasks. The map is printed
 * generically (one line per worker/job/task), so new keys show up as they are
 * added. */
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_mpack.h"
#include "ac_msg_codec.h"

/* One scalar (or a short summary of an array/map) without a newline. */
static bool print_value(ac_mpack_reader *r, int depth)
{
    switch (ac_mpack_peek(r)) {
    case AC_MPACK_NIL: ac_mpack_read_nil(r); printf("-"); return true;
    case AC_MPACK_BOOL: {
        bool v;
        ac_mpack_read_bool(r, &v);
        printf("%s", v ? "yes" : "no");
        return true;
    }
    case AC_MPACK_INT: {
        int64_t v;
        uint64_t u;
        ac_mpack_reader save = *r;
        if (ac_mpack_read_int(r, &v)) {
            printf("%" PRId64, v);
            return true;
        }
        *r = save;
        if (!ac_mpack_read_uint(r, &u))
            return false;
        printf("%" PRIu64, u);
        return true;
    }
    case AC_MPACK_F64: {
        double v;
        ac_mpack_read_f64(r, &v);
        printf("%g", v);
        return true;
    }
    case AC_MPACK_STR: {
        const char *s;
        size_t n;
        ac_mpack_read_str(r, &s, &n);
        printf("%.*s", (int)(n ? n : 1), n ? s : "-");
        return true;
    }
    case AC_MPACK_ARRAY: {
        uint32_t n;
        ac_mpack_read_array(r, &n);
        printf("[");
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                printf(", ");
            /* hashes: the first 12 hex digits are enough to tell them apart */
            if (ac_mpack_peek(r) == AC_MPACK_STR) {
                const char *s;
                size_t len;
                ac_mpack_read_str(r, &s, &len);
                printf("%.*s%s", (int)(len > 12 ? 12 : len), s, len > 12 ? ".." : "");
            } else if (depth > 4 || !print_value(r, depth + 1)) {
                return false;
            }
        }
        printf("]");
        return true;
    }
    case AC_MPACK_MAP: {
        uint32_t n;
        ac_mpack_read_map(r, &n);
        for (uint32_t i = 0; i < n; i++) {
            const char *k;
            size_t kl;
            if (!ac_mpack_read_str(r, &k, &kl))
                return false;
            printf("%s%.*s ", i ? "  " : "", (int)kl, k);
            if (depth > 4 || !print_value(r, depth + 1))
                return false;
        }
        return true;
    }
    default:
        return ac_mpack_skip(r) && printf("?") > 0;
    }
}

static bool print_status(const uint8_t *buf, size_t len)
{
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint32_t n;
    if (!ac_mpack_read_map(&r, &n))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        size_t kl;
        if (!ac_mpack_read_str(&r, &k, &kl))
            return false;
        if (ac_mpack_peek(&r) == AC_MPACK_ARRAY) { /* workers, jobs, in_flight: one line each */
            uint32_t m;
            ac_mpack_read_array(&r, &m);
            printf("%.*s (%u):\n", (int)kl, k, (unsigned)m);
            for (uint32_t j = 0; j < m; j++) {
                printf("  ");
                if (!print_value(&r, 1))
                    return false;
                printf("\n");
            }
            continue;
        }
        printf("%.*s: ", (int)kl, k);
        if (!print_value(&r, 1))
            return false;
        printf("\n");
    }
    return true;
}

int ac_cmd_status(int argc, char **argv)
{
    const char *broker = NULL, *curve_key = NULL, *server_key = NULL;
    int timeout_ms = 5000;
    const ac_arg_spec specs[] = {
        {"broker", NULL, AC_ARG_STRING, &broker, "the broker endpoint, e.g. tcp://host:5555 (required)"},
        {"curve-key", NULL, AC_ARG_STRING, &curve_key, "CURVE: this client's secret certificate file"},
        {"server-key", NULL, AC_ARG_STRING, &server_key, "CURVE: the broker's public certificate file"},
        {"timeout-ms", NULL, AC_ARG_INT, &timeout_ms, "how long to wait for the answer (5000)"},
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    bool help = false;
    int npos = 0;
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, nspecs, NULL, 0, &npos, &help, &err)) {
        fprintf(stderr, "autocalib status: %s\n", err.msg);
        return 2;
    }
    const char *usage = "usage: autocalib status --broker EP [--curve-key F --server-key F]";
    if (help) {
        ac_args_print_help(usage, specs, nspecs);
        return 0;
    }
    if (!broker || timeout_ms < 1) {
        fprintf(stderr, "autocalib status: --broker is required, --timeout-ms must be >= 1\n%s\n", usage);
        return 2;
    }
    zsock_t *s = ac_msg_dealer_new(broker, curve_key, server_key, &err);
    if (!s)
        return ac_cli_fail("status", err.msg);
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_STATUS);
    ac_msg_send(s, NULL, &m, &err); /* a failure shows as no answer below */
    int rc = 1;
    int64_t end = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = end - zclock_mono();
        if (left <= 0) {
            fprintf(stderr, "autocalib status: no answer from %s within %d ms (broker not running, or "
                            "this key not admitted?)\n", broker, timeout_ms);
            break;
        }
        zmq_pollitem_t it = {zsock_resolve(s), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)left) <= 0)
            continue;
        ac_msg in;
        if (ac_msg_recv(s, AC_DIR_FROM_BROKER, &in, NULL, NULL, &err) != AC_OK) {
            fprintf(stderr, "autocalib status: %s\n", err.msg);
            break;
        }
        if (in.cmd == AC_MSG_STATUS_REPLY) {
            rc = print_status(in.status_map.data, in.status_map.len) ? 0 : 1;
            if (rc)
                fprintf(stderr, "autocalib status: the reply is not a status map\n");
            ac_msg_reset(&in);
            break;
        }
        if (in.cmd == AC_MSG_DISCONNECT || in.cmd == AC_MSG_ERROR) {
            fprintf(stderr, "autocalib status: the broker answered %s: %s\n", ac_msg_cmd_name(in.cmd),
                    in.cmd == AC_MSG_ERROR ? in.error.message : in.reason);
            ac_msg_reset(&in);
            break;
        }
        ac_msg_reset(&in); /* heartbeats */
    }
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_DISCONNECT);
    snprintf(m.reason, sizeof m.reason, "status read");
    ac_msg_send(s, NULL, &m, &err);
    zsock_destroy(&s);
    return rc;
}
