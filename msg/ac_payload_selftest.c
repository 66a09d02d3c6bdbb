/* ac_payload selftest: round trips (every field, bit-exact thresholds), the
 * candidate id (stable, canonical, distinguishing), every truncation and
 * trailing bytes rejected with a message, invalid values rejected on both
 * sides, and flipped / random bytes never crash.
 * With --write-seeds DIR it writes the fuzz seeds (tests/fuzz/corpus/payload). */
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_payload.h"
#include "ac_check.h"

static const ac_payload_range k_ranges[] = {
    {"input", 2.8215, -0.4242, 2.8215},
    {"conv1.out", 0.1 + 0.2, 0.0, 5.5},             /* a value that is not exact in decimal */
    {"fc/Gemm_output_0", 13.25, -13.0, 12.75},
};
static const char *const k_layers[] = {"conv2", "relu3_out"};

static ac_eval_payload sample_eval(void)
{
    ac_eval_payload p = {0};
    p.nranges = 3;
    p.ranges = k_ranges;
    p.per_channel = true;
    p.first_conv_fp32 = true;
    p.nfp32 = 2;
    p.fp32_layers = k_layers;
    p.metric_kind = 2;
    p.metric_output = 1;
    p.metric_topk = 5;
    p.metric_classifier = 0;
    snprintf(p.detect_preset, sizeof p.detect_preset, "ultraface");
    p.need_reference = true;
    return p;
}

static bool same_eval(const ac_eval_payload *a, const ac_eval_payload *b)
{
    if (a->fp32_reference != b->fp32_reference || a->nranges != b->nranges || a->per_channel != b->per_channel ||
        a->accuracy_opt != b->accuracy_opt || a->first_conv_fp32 != b->first_conv_fp32 || a->nfp32 != b->nfp32 ||
        a->metric_kind != b->metric_kind || a->metric_output != b->metric_output ||
        a->metric_topk != b->metric_topk || a->metric_classifier != b->metric_classifier ||
        a->need_reference != b->need_reference || strcmp(a->detect_preset, b->detect_preset))
        return false;
    for (int i = 0; i < a->nranges; i++)
        if (strcmp(a->ranges[i].name, b->ranges[i].name) || memcmp(&a->ranges[i].th, &b->ranges[i].th, 8) ||
            memcmp(&a->ranges[i].min, &b->ranges[i].min, 8) || memcmp(&a->ranges[i].max, &b->ranges[i].max, 8))
            return false;
    for (int i = 0; i < a->nfp32; i++)
        if (strcmp(a->fp32_layers[i], b->fp32_layers[i]))
            return false;
    return true;
}

static void test_eval_round_trip(void)
{
    ac_eval_payload p = sample_eval();
    uint8_t *buf = NULL;
    size_t len = 0;
    ac_err err = {0};
    CHECK(ac_eval_payload_encode(&p, &buf, &len, &err) == 0);
    ac_eval_payload q;
    ac_payload_storage st;
    if (ac_eval_payload_decode(buf, len, &q, &st, &err)) {
        fprintf(stderr, "decode: %s\n", err.msg);
        failures++;
        return;
    }
    CHECK(same_eval(&p, &q));
    /* The views do not point into buf (names are NUL-terminated copies). */
    uint8_t *copy = malloc(len);
    memcpy(copy, buf, len);
    memset(buf, 0, len);
    CHECK(!strcmp(q.ranges[1].name, "conv1.out") && !strcmp(q.fp32_layers[1], "relu3_out"));
    memcpy(buf, copy, len);
    free(copy);
    ac_payload_storage_free(&st);
    ac_payload_storage_free(&st); /* idempotent */

    /* The id: stable, the same for the same candidate, different for another. */
    uint64_t id = ac_eval_payload_id(buf, len);
    CHECK(id == ac_eval_payload_id(buf, len));
    ac_eval_payload p2 = p;
    p2.per_channel = false;
    uint8_t *b2;
    size_t l2;
    CHECK(ac_eval_payload_encode(&p2, &b2, &l2, &err) == 0);
    CHECK(ac_eval_payload_id(b2, l2) != id);
    free(b2);
    ac_payload_range r2[3];
    memcpy(r2, k_ranges, sizeof r2);
    r2[2].th = nextafter(r2[2].th, 100.0); /* one ulp: another candidate */
    p2 = p;
    p2.ranges = r2;
    CHECK(ac_eval_payload_encode(&p2, &b2, &l2, &err) == 0);
    CHECK(ac_eval_payload_id(b2, l2) != id);
    free(b2);

    /* Empty arrays and fp32_reference. */
    ac_eval_payload e = {.fp32_reference = true, .metric_kind = 1, .metric_classifier = 1};
    CHECK(ac_eval_payload_encode(&e, &b2, &l2, &err) == 0);
    CHECK(ac_eval_payload_decode(b2, l2, &q, &st, &err) == 0);
    CHECK(same_eval(&e, &q) && q.nranges == 0 && q.nfp32 == 0);
    ac_payload_storage_free(&st);
    free(b2);

    /* Every truncation is an error with a message; trailing bytes too. */
    for (size_t n = 0; n < len; n++) {
        ac_err e2 = {0};
        int rc = ac_eval_payload_decode(buf, n, &q, &st, &e2);
        CHECK(rc != 0 && e2.code != AC_OK && e2.msg[0]);
        CHECK(st.ranges == NULL && st.names == NULL && q.ranges == NULL);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0xc0;
    CHECK(ac_eval_payload_decode(longer, len + 1, &q, &st, &err) != 0 && strstr(err.msg, "trailing"));
    free(longer);
    /* A calib payload is not an eval payload. */
    CHECK(ac_calib_payload_decode(buf, len, &(ac_calib_payload){0}, &err) != 0 && err.msg[0]);
    free(buf);
}

/* The same candidate written by another encoder (wider integer encodings) has the same id. */
static void test_id_canonical(void)
{
    ac_eval_payload p = sample_eval();
    uint8_t *buf;
    size_t len;
    ac_err err = {0};
    CHECK(ac_eval_payload_encode(&p, &buf, &len, &err) == 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 14);
    msgpack_pack_str(&pk, 15);
    msgpack_pack_str_body(&pk, "ac-eval-payload", 15);
    msgpack_pack_fix_uint32(&pk, 1); /* 0xce: 5 bytes instead of 1 */
    msgpack_pack_false(&pk);
    msgpack_pack_array(&pk, 3);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_str(&pk, strlen(k_ranges[i].name));
        msgpack_pack_str_body(&pk, k_ranges[i].name, strlen(k_ranges[i].name));
        msgpack_pack_double(&pk, k_ranges[i].th);
        msgpack_pack_double(&pk, k_ranges[i].min);
        msgpack_pack_double(&pk, k_ranges[i].max);
    }
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_array(&pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_str(&pk, strlen(k_layers[i]));
        msgpack_pack_str_body(&pk, k_layers[i], strlen(k_layers[i]));
    }
    msgpack_pack_fix_int64(&pk, 2);
    msgpack_pack_fix_int16(&pk, 1);
    msgpack_pack_fix_uint8(&pk, 5);
    msgpack_pack_fix_int32(&pk, 0);
    msgpack_pack_true(&pk);
    msgpack_pack_str(&pk, strlen(p.detect_preset));
    msgpack_pack_str_body(&pk, p.detect_preset, strlen(p.detect_preset));
    CHECK(sb.size != len);
    ac_eval_payload q;
    ac_payload_storage st;
    CHECK(ac_eval_payload_decode((const uint8_t *)sb.data, sb.size, &q, &st, &err) == 0);
    CHECK(same_eval(&p, &q));
    ac_payload_storage_free(&st);
    CHECK(ac_eval_payload_id((const uint8_t *)sb.data, sb.size) == ac_eval_payload_id(buf, len));
    msgpack_sbuffer_destroy(&sb);
    free(buf);
}

static void test_invalid_values(void)
{
    ac_err err = {0};
    uint8_t *buf = NULL;
    size_t len;
    ac_payload_range r[1] = {{"x", 0.0, 0.0, 1.0}};
    ac_eval_payload p = {.nranges = 1, .ranges = r, .metric_kind = 2};
    CHECK(ac_eval_payload_encode(&p, &buf, &len, &err) != 0 && strstr(err.msg, "'x'"));
    r[0].th = NAN;
    CHECK(ac_eval_payload_encode(&p, &buf, &len, &err) != 0);
    r[0] = (ac_payload_range){"x", 1.0, 2.0, 1.0}; /* min > max */
    CHECK(ac_eval_payload_encode(&p, &buf, &len, &err) != 0);
    r[0] = (ac_payload_range){"", 1.0, 0.0, 1.0};
    CHECK(ac_eval_payload_encode(&p, &buf, &len, &err) != 0 && strstr(err.msg, "name"));
    const char *empty[1] = {""};
    ac_eval_payload p2 = {.nfp32 = 1, .fp32_layers = empty};
    CHECK(ac_eval_payload_encode(&p2, &buf, &len, &err) != 0);
    ac_calib_payload c = {{NULL, 0}};
    CHECK(ac_calib_payload_encode(&c, &buf, &len, &err) != 0);

    /* The decoder checks the same rules on bytes written by hand: a negative
     * threshold, a float32 threshold, a name with a NUL, a metric kind out of int32. */
    for (int variant = 0; variant < 4; variant++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 14);
        msgpack_pack_str(&pk, 15);
        msgpack_pack_str_body(&pk, "ac-eval-payload", 15);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_false(&pk);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_str(&pk, 3);
        msgpack_pack_str_body(&pk, variant == 2 ? "a\0b" : "abc", 3);
        if (variant == 1)
            msgpack_pack_float(&pk, 1.0f);
        else
            msgpack_pack_double(&pk, variant == 0 ? -1.0 : 1.0);
        msgpack_pack_double(&pk, 0.0);
        msgpack_pack_double(&pk, 1.0);
        msgpack_pack_false(&pk);
        msgpack_pack_false(&pk);
        msgpack_pack_false(&pk);
        msgpack_pack_array(&pk, 0);
        if (variant == 3)
            msgpack_pack_int64(&pk, (int64_t)1 << 40);
        else
            msgpack_pack_int64(&pk, 2);
        msgpack_pack_int64(&pk, 0);
        msgpack_pack_int64(&pk, 5);
        msgpack_pack_int64(&pk, 0);
        msgpack_pack_false(&pk);
        msgpack_pack_str(&pk, 0);
        msgpack_pack_str_body(&pk, "", 0);
        ac_eval_payload q;
        ac_payload_storage st;
        ac_err e2 = {0};
        CHECK(ac_eval_payload_decode((const uint8_t *)sb.data, sb.size, &q, &st, &e2) != 0 && e2.msg[0]);
        CHECK(st.ranges == NULL && st.names == NULL);
        if (variant == 3)
            CHECK(strstr(e2.msg, "metric_kind") != NULL);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_calib(void)
{
    uint8_t tmpl[300];
    for (size_t i = 0; i < sizeof tmpl; i++)
        tmpl[i] = (uint8_t)(i * 7);
    ac_calib_payload c = {{tmpl, sizeof tmpl}};
    uint8_t *buf;
    size_t len;
    ac_err err = {0};
    CHECK(ac_calib_payload_encode(&c, &buf, &len, &err) == 0);
    ac_calib_payload d;
    CHECK(ac_calib_payload_decode(buf, len, &d, &err) == 0);
    CHECK(d.collector_template.len == sizeof tmpl && !memcmp(d.collector_template.data, tmpl, sizeof tmpl));
    CHECK(d.collector_template.data >= buf && d.collector_template.data < buf + len); /* a view into buf */
    for (size_t n = 0; n < len; n++) {
        ac_err e2 = {0};
        CHECK(ac_calib_payload_decode(buf, n, &d, &e2) != 0 && e2.msg[0]);
    }
    ac_eval_payload q;
    ac_payload_storage st;
    CHECK(ac_eval_payload_decode(buf, len, &q, &st, &err) != 0);
    free(buf);
}

/* Run payloads and outputs: round trips, views, every truncation refused,
 * a data length that does not match the shape refused. */
static void test_run(void)
{
    uint8_t *ev;
    size_t evn;
    ac_err err = {0};
    ac_eval_payload p = sample_eval();
    CHECK(ac_eval_payload_encode(&p, &ev, &evn, &err) == 0);
    float x[2 * 3] = {1, -2, 3.5f, 0, 1e-7f, -0.25f};
    ac_run_payload rp = {{ev, evn}, 2, {2, 3}, {(const uint8_t *)x, sizeof x}};
    uint8_t *buf;
    size_t len;
    CHECK(ac_run_payload_encode(&rp, &buf, &len, &err) == 0);
    ac_run_payload d;
    CHECK(ac_run_payload_decode(buf, len, &d, &err) == 0);
    CHECK(d.ndim == 2 && d.shape[0] == 2 && d.shape[1] == 3 && d.data.len == sizeof x &&
          !memcmp(d.data.data, x, sizeof x) && d.eval.len == evn && !memcmp(d.eval.data, ev, evn));
    for (size_t n = 0; n < len; n++) {
        ac_err e2 = {0};
        CHECK(ac_run_payload_decode(buf, n, &d, &e2) != 0 && e2.msg[0]);
    }
    free(buf);
    rp.shape[1] = 4; /* 8 values claimed, 6 given */
    CHECK(ac_run_payload_encode(&rp, &buf, &len, &err) == 0);
    ac_err e3 = {0};
    CHECK(ac_run_payload_decode(buf, len, &d, &e3) != 0 && strstr(e3.msg, "data bytes"));
    free(buf);
    ac_run_output outs[2] = {{2, {2, 3}, {(const uint8_t *)x, sizeof x}}, {1, {6}, {(const uint8_t *)x, sizeof x}}};
    CHECK(ac_run_outputs_encode(outs, 2, &buf, &len, &err) == 0);
    ac_run_output got[2];
    int32_t k = 0;
    CHECK(ac_run_outputs_decode(buf, len, got, 2, &k, &err) == 0 && k == 2 && got[1].ndim == 1 &&
          got[1].shape[0] == 6 && !memcmp(got[0].data.data, x, sizeof x));
    ac_err e4 = {0};
    CHECK(ac_run_outputs_decode(buf, len, got, 1, &k, &e4) != 0 && e4.msg[0]); /* more than cap */
    free(buf);
    free(ev);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Flipped bytes and random garbage: a result or an error with a message, never a crash. */
static void test_garbage(void)
{
    ac_eval_payload p = sample_eval();
    uint8_t *buf;
    size_t len;
    ac_err err = {0};
    CHECK(ac_eval_payload_encode(&p, &buf, &len, &err) == 0);
    int accepted = 0, rejected = 0;
    for (int it = 0; it < 20000; it++) {
        uint8_t *b = malloc(len);
        memcpy(b, buf, len);
        int flips = 1 + (int)(next_rand() % 3);
        for (int f = 0; f < flips; f++)
            b[next_rand() % len] ^= (uint8_t)(1u << (next_rand() % 8));
        ac_eval_payload q;
        ac_payload_storage st;
        ac_err e2 = {0};
        if (ac_eval_payload_decode(b, len, &q, &st, &e2) == 0) {
            accepted++;
            (void)ac_eval_payload_id(b, len);
            ac_payload_storage_free(&st);
        } else {
            rejected++;
            CHECK(e2.msg[0] != '\0');
        }
        free(b);
    }
    for (int it = 0; it < 20000; it++) {
        size_t n = next_rand() % 64;
        uint8_t *b = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)next_rand();
        if (n)
            b[0] = (uint8_t)(0x90 + next_rand() % 16); /* start like an array often */
        ac_eval_payload q;
        ac_payload_storage st;
        ac_calib_payload c;
        ac_err e2 = {0};
        if (ac_eval_payload_decode(b, n, &q, &st, &e2) == 0)
            ac_payload_storage_free(&st);
        (void)ac_calib_payload_decode(b, n, &c, &e2);
        (void)ac_eval_payload_id(b, n);
        free(b);
    }
    printf("payload: %d flipped inputs accepted, %d rejected\n", accepted, rejected);
    CHECK(rejected > 0);
    free(buf);
}

static int write_file(const char *dir, const char *name, uint8_t kind, const uint8_t *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputc(kind, f); /* byte 0 picks the decoder (fuzz_payload.c) */
    fwrite(b, 1, n, f);
    return fclose(f);
}

static int write_seeds(const char *dir)
{
    ac_err err = {0};
    uint8_t *buf;
    size_t len;
    ac_eval_payload p = sample_eval();
    if (ac_eval_payload_encode(&p, &buf, &len, &err) || write_file(dir, "eval_candidate", 0, buf, len))
        return 1;
    free(buf);
    ac_eval_payload e = {.fp32_reference = true, .metric_kind = 1, .metric_classifier = 1, .need_reference = true};
    if (ac_eval_payload_encode(&e, &buf, &len, &err) || write_file(dir, "eval_fp32", 0, buf, len))
        return 1;
    free(buf);
    uint8_t tmpl[40] = {0x95, 0xa1, 'x'};
    ac_calib_payload c = {{tmpl, sizeof tmpl}};
    if (ac_calib_payload_encode(&c, &buf, &len, &err) || write_file(dir, "calib", 1, buf, len))
        return 1;
    free(buf);
    uint8_t *ev;
    size_t evn;
    if (ac_eval_payload_encode(&p, &ev, &evn, &err))
        return 1;
    float x[4] = {1, 2, 3, 4};
    ac_run_payload rp = {{ev, evn}, 2, {2, 2}, {(const uint8_t *)x, sizeof x}};
    if (ac_run_payload_encode(&rp, &buf, &len, &err) || write_file(dir, "run", 2, buf, len))
        return 1;
    free(buf);
    free(ev);
    ac_run_output o = {2, {2, 2}, {(const uint8_t *)x, sizeof x}};
    if (ac_run_outputs_encode(&o, 1, &buf, &len, &err) || write_file(dir, "run_outputs", 3, buf, len))
        return 1;
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-seeds"))
        return write_seeds(argv[2]);
    test_eval_round_trip();
    test_id_canonical();
    test_invalid_values();
    test_calib();
    test_run();
    test_garbage();
    if (failures) {
        fprintf(stderr, "payload_selftest: %d checks failed\n", failures);
        return 1;
    }
    printf("payload_selftest: ok\n");
    return 0;
}
