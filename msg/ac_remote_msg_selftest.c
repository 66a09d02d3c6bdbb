/* Remote test mode codec (docs/remote.md §2): every request round-trips, every
 * reply decodes to its command and seq, each malformation is refused with a
 * message naming the field, a version mismatch is told apart, and garbage or
 * truncated frames never crash. With --write-seeds DIR it writes the fuzz
 * seeds (tests/fuzz/corpus/remote_msg). */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_remote_msg.h"
#include "ac_check.h"

static const float k_batch[6] = {0.5f, -1.25f, 3.0f, 0.0f, 1e-3f, 7.75f};

static ac_rm_request sample(ac_rm_command cmd)
{
    ac_rm_request q = {.cmd = cmd, .seq = 42, .session = "5f3a9c", .session_len = 6};
    if (cmd == AC_RM_RUN) {
        q.id = 7;
        q.dtype = "float32";
        q.dtype_len = 7;
        q.ndim = 4;
        q.shape[0] = 2, q.shape[1] = 1, q.shape[2] = 3, q.shape[3] = 1;
        q.data = (const uint8_t *)k_batch;
        q.data_len = sizeof k_batch;
    }
    if (cmd == AC_RM_SCORE) {
        q.id = 7;
        q.score = 0.8125;
    }
    return q;
}

static void test_request_round_trips(void)
{
    for (ac_rm_command c = AC_RM_HELLO; c <= AC_RM_RESULT; c++) {
        ac_rm_request q = sample(c), d;
        uint8_t *buf;
        size_t len;
        ac_err e = {0};
        CHECK(ac_rm_encode_request(&q, AC_RM_VERSION, &buf, &len, &e) == 0, "%s", e.msg);
        ac_rm_decode_info info;
        CHECK(ac_rm_decode_request(buf, len, &d, &info, &e) == 0, "%s: %s", ac_rm_command_name(c), e.msg);
        CHECK(d.cmd == c && d.seq == 42 && info.have_seq && !info.version_mismatch, "%s header", ac_rm_command_name(c));
        if (c != AC_RM_HELLO)
            CHECK(d.session_len == 6 && !memcmp(d.session, "5f3a9c", 6), "session");
        if (c == AC_RM_RUN)
            CHECK(d.id == 7 && d.ndim == 4 && d.shape[2] == 3 && d.data_len == sizeof k_batch &&
                      !memcmp(d.data, k_batch, sizeof k_batch) && d.dtype_len == 7,
                  "RUN fields");
        if (c == AC_RM_SCORE)
            CHECK(d.id == 7 && d.score == 0.8125, "SCORE fields");
        /* every truncation is refused, with a message */
        for (size_t n = 0; n < len; n++) {
            ac_err t = {0};
            CHECK(ac_rm_decode_request(buf, n, &d, NULL, &t) != 0 && t.msg[0], "%s truncated to %zu",
                  ac_rm_command_name(c), n);
        }
        free(buf);
    }
}

static void expect_refused(const ac_rm_request *q, uint64_t version, const char *needle)
{
    uint8_t *buf;
    size_t len;
    ac_err e = {0};
    if (ac_rm_encode_request(q, version, &buf, &len, &e)) {
        CHECK(0, "encode: %s", e.msg);
        return;
    }
    ac_rm_request d;
    ac_rm_decode_info info;
    CHECK(ac_rm_decode_request(buf, len, &d, &info, &e) != 0 && strstr(e.msg, needle), "want '%s', got '%s'", needle,
          e.msg);
    free(buf);
}

static void test_refusals(void)
{
    ac_rm_request q = sample(AC_RM_RUN);
    q.ndim = 0;
    expect_refused(&q, AC_RM_VERSION, "shape");
    q = sample(AC_RM_RUN);
    q.shape[1] = 0;
    expect_refused(&q, AC_RM_VERSION, "shape[1]");
    q = sample(AC_RM_NEXT);
    q.session = "0123456789012345678901234567890123456789012345678901234567890123456789";
    q.session_len = strlen(q.session);
    expect_refused(&q, AC_RM_VERSION, "session");
    q = sample(AC_RM_SCORE);
    q.score = 1.0 / 0.0;
    expect_refused(&q, AC_RM_VERSION, "finite");
    q = sample(AC_RM_SCORE);
    q.id = -3;
    expect_refused(&q, AC_RM_VERSION, "'id'");

    /* another version: refused and told apart, seq not needed */
    uint8_t *buf;
    size_t len;
    ac_err e = {0};
    q = sample(AC_RM_HELLO);
    ac_rm_encode_request(&q, 2, &buf, &len, &e);
    ac_rm_request d;
    ac_rm_decode_info info;
    CHECK(ac_rm_decode_request(buf, len, &d, &info, &e) != 0 && info.version_mismatch && info.version == 2 &&
              strstr(e.msg, "version 2"),
          "version: %s", e.msg);
    free(buf);

    /* a reply sent as a request */
    ac_rm_encode_ack(9, 1, &buf, &len, &e);
    CHECK(ac_rm_decode_request(buf, len, &d, &info, &e) != 0 && strstr(e.msg, "reply") && info.have_seq,
          "ACK as request: %s", e.msg);
    free(buf);
}

static void test_replies(void)
{
    uint8_t *buf;
    size_t len;
    ac_err e = {0};
    ac_rm_command cmd;
    uint64_t seq;
    const char *code;
    size_t code_len;
    int64_t shape[2] = {2, 3};
    ac_rm_tensor_desc in = {"input", "float32", 2, shape};
    const char *outs[1] = {"logits"};
    ac_rm_welcome w = {"s1", "m.onnx", 1, &in, 1, outs, 16, 4};
    CHECK(ac_rm_encode_welcome(5, &w, &buf, &len, &e) == 0 &&
              ac_rm_decode_reply(buf, len, &cmd, &seq, &code, &code_len, &e) == 0 && cmd == AC_RM_WELCOME && seq == 5,
          "WELCOME: %s", e.msg);
    free(buf);
    ac_rm_output o = {"logits", 2, shape, k_batch};
    CHECK(ac_rm_encode_outputs(6, 3, 1, &o, &buf, &len, &e) == 0 &&
              ac_rm_decode_reply(buf, len, &cmd, &seq, NULL, NULL, &e) == 0 && cmd == AC_RM_OUTPUTS && seq == 6 &&
              memmem(buf, len, k_batch, sizeof k_batch),
          "OUTPUTS: %s", e.msg);
    free(buf);
    CHECK(ac_rm_encode_error(8, "bad_shape", "want [16,1,28,28]", &buf, &len, &e) == 0 &&
              ac_rm_decode_reply(buf, len, &cmd, &seq, &code, &code_len, &e) == 0 && cmd == AC_RM_ERROR &&
              code_len == 9 && !memcmp(code, "bad_shape", 9),
          "ERROR: %s", e.msg);
    free(buf);
    const char *kinds[] = {"candidate", "wait", "finished", "ack"};
    for (int k = 0; k < 4; k++) {
        int rc = k == 0   ? ac_rm_encode_candidate(1, 2, "KL", "int8", "{}", &buf, &len, &e)
                 : k == 1 ? ac_rm_encode_wait(1, "calibrating", &buf, &len, &e)
                 : k == 2 ? ac_rm_encode_finished(1, "{\"x\":1}", &buf, &len, &e)
                          : ac_rm_encode_ack(1, 2, &buf, &len, &e);
        CHECK(rc == 0 && ac_rm_decode_reply(buf, len, &cmd, &seq, NULL, NULL, &e) == 0 && seq == 1, "%s", kinds[k]);
        free(buf);
    }
}

static void test_garbage(void)
{
    uint32_t s = 12345;
    uint8_t junk[256];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(s % sizeof junk);
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            junk[i] = (uint8_t)(s >> 24);
        }
        if (n > 0)
            junk[0] = 0x95; /* an array of 5, to get past the first check sometimes */
        ac_rm_request d;
        ac_err e = {0};
        if (ac_rm_decode_request(junk, n, &d, NULL, &e) != 0)
            CHECK(e.msg[0], "refusal without a message");
    }
}

static int write_seeds(const char *dir)
{
    for (ac_rm_command c = AC_RM_HELLO; c <= AC_RM_RESULT; c++) {
        ac_rm_request q = sample(c);
        uint8_t *buf;
        size_t len;
        ac_err e = {0};
        if (ac_rm_encode_request(&q, AC_RM_VERSION, &buf, &len, &e))
            return 1;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.bin", dir, ac_rm_command_name(c));
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
            perror(path);
            return 1;
        }
        free(buf);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-seeds"))
        return write_seeds(argv[2]);
    test_request_round_trips();
    test_refusals();
    test_replies();
    test_garbage();
    printf("remote_msg selftest: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
