/* Selftest of the IR, the topological sort, the passes and the executor. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_exec.h"
#include "ac_graph.h"
#include "ac_mem_plan.h"
#include "ac_ops.h"
#include "ac_passes.h"
#include "ac_check.h"

static int add_const(ac_graph *g, const char *name, int ndim, const int64_t *dims, const float *v)
{
    int t = ac_graph_add_tensor(g, name, AC_DT_F32, ndim, dims);
    ac_graph_set_const(g, t, v, ac_tensor_bytes(&g->tensors[t]), NULL);
    return t;
}

static int node(ac_graph *g, const char *name, const char *op, int nin, const int *in, int out)
{
    return ac_graph_add_node(g, name, op, ac_op_from_onnx(op), nin, in, 1, &out);
}

/* x -> Conv(W,B) -> BN -> Clip(0,6) -> Identity -> Mul(., Sigmoid(.)) -> y */
static ac_graph *build_chain(void)
{
    ac_graph *g = ac_graph_new("chain");
    g->opset = 13;
    int64_t xd[4] = {1, 2, 3, 3}, wd[4] = {2, 2, 1, 1}, cd[1] = {2}, sd[1] = {1};
    int x = ac_graph_add_tensor(g, "x", AC_DT_F32, 4, xd);
    float w[4] = {0.5f, -1.0f, 2.0f, 0.25f}, b[2] = {0.1f, -0.2f};
    float gamma[2] = {1.5f, 0.5f}, beta[2] = {0.3f, -0.1f}, mean[2] = {0.2f, -0.4f}, var[2] = {2.0f, 0.5f};
    float zero = 0.0f, six = 6.0f;
    int W = add_const(g, "W", 4, wd, w), B = add_const(g, "B", 1, cd, b);
    int ga = add_const(g, "gamma", 1, cd, gamma), be = add_const(g, "beta", 1, cd, beta);
    int me = add_const(g, "mean", 1, cd, mean), va = add_const(g, "var", 1, cd, var);
    int lo = add_const(g, "lo", 0, sd, &zero), hi = add_const(g, "hi", 0, sd, &six);
    int c = ac_graph_add_tensor(g, "c", AC_DT_F32, -1, NULL);
    int bn = ac_graph_add_tensor(g, "bn", AC_DT_F32, -1, NULL);
    int r6 = ac_graph_add_tensor(g, "r6", AC_DT_F32, -1, NULL);
    int id = ac_graph_add_tensor(g, "id", AC_DT_F32, -1, NULL);
    int sg = ac_graph_add_tensor(g, "sg", AC_DT_F32, -1, NULL);
    int y = ac_graph_add_tensor(g, "y", AC_DT_F32, -1, NULL);
    /* Written out of order on purpose: toposort must fix it. */
    node(g, "mul", "Mul", 2, (int[]){id, sg}, y);
    node(g, "sig", "Sigmoid", 1, (int[]){id}, sg);
    node(g, "conv", "Conv", 3, (int[]){x, W, B}, c);
    node(g, "bn", "BatchNormalization", 5, (int[]){c, ga, be, me, va}, bn);
    node(g, "clip", "Clip", 3, (int[]){bn, lo, hi}, r6);
    node(g, "ident", "Identity", 1, (int[]){r6}, id);
    ac_graph_set_io(g, 1, &x, 1, &y);
    return g;
}

static void run_graph(const ac_graph *g, const float *x, float *y, int n, int threads)
{
    ac_err err = {0};
    ac_exec *e = ac_exec_new(g, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e)
        return;
    ac_exec_set_threads(e, threads);
    const void *in[1] = {x};
    CHECK(ac_exec_run(e, in, &err) == 0, "%s", err.msg);
    memcpy(y, ac_exec_tensor(e, g->outputs[0]), sizeof(float) * (size_t)n);
    ac_exec_destroy(&e);
}

static void test_passes_keep_values(void)
{
    ac_err err = {0};
    ac_graph *g = build_chain();
    CHECK(ac_graph_toposort(g, &err) == 0, "%s", err.msg);
    CHECK(ac_graph_infer_shapes(g, &err) == 0, "%s", err.msg);
    CHECK(g->nodes[0].op == AC_OP_CONV, "first node after sort is %s", g->nodes[0].name);
    float x[18], y0[18], y1[18], y2[18];
    for (int i = 0; i < 18; i++)
        x[i] = (float)((i * 7) % 11) - 5.0f;
    run_graph(g, x, y0, 18, 1);
    ac_passes_stats st = {0};
    CHECK(ac_graph_simplify(g, &st, &err) == 0, "%s", err.msg);
    CHECK(st.bn_folded == 1, "bn_folded %d", st.bn_folded);
    CHECK(st.identities_dropped == 1, "identities %d", st.identities_dropped);
    CHECK(st.relu6_recognised == 1, "relu6 %d", st.relu6_recognised);
    CHECK(st.silu_recognised == 1, "silu %d", st.silu_recognised);
    CHECK(g->nnodes == 3, "nodes after simplify %d", g->nnodes);
    CHECK(g->nodes[1].op == AC_OP_RELU6 && g->nodes[2].op == AC_OP_SILU, "ops %s %s",
          ac_op_name(g->nodes[1].op), ac_op_name(g->nodes[2].op));
    run_graph(g, x, y1, 18, 1);
    run_graph(g, x, y2, 18, 3);
    for (int i = 0; i < 18; i++) {
        CHECK(fabsf(y0[i] - y1[i]) <= 1e-5f * (1.0f + fabsf(y0[i])), "y[%d] %g vs %g", i, y0[i], y1[i]);
        CHECK(memcmp(&y1[i], &y2[i], sizeof(float)) == 0, "thread count changed y[%d]", i);
    }
    ac_graph_destroy(&g);
    CHECK(g == NULL, "destroy sets NULL");
    ac_graph_destroy(&g); /* NULL-safe */
}

static void test_toposort_errors(void)
{
    ac_err err = {0};
    ac_graph *g = ac_graph_new("bad");
    int64_t d[1] = {4};
    int x = ac_graph_add_tensor(g, "x", AC_DT_F32, 1, d);
    int a = ac_graph_add_tensor(g, "a", AC_DT_F32, -1, NULL);
    int b = ac_graph_add_tensor(g, "b", AC_DT_F32, -1, NULL);
    node(g, "n1", "Relu", 1, (int[]){b}, a);
    node(g, "n2", "Relu", 1, (int[]){a}, b);
    ac_graph_set_io(g, 1, &x, 1, &b);
    CHECK(ac_graph_toposort(g, &err) != 0, "cycle accepted");
    CHECK(strstr(err.msg, "cycle") != NULL, "message: %s", err.msg);
    ac_graph_destroy(&g);

    g = ac_graph_new("bad2");
    x = ac_graph_add_tensor(g, "x", AC_DT_F32, 1, d);
    a = ac_graph_add_tensor(g, "a", AC_DT_F32, -1, NULL);
    int ghost = ac_graph_add_tensor(g, "ghost", AC_DT_F32, -1, NULL);
    node(g, "n1", "Add", 2, (int[]){x, ghost}, a);
    ac_graph_set_io(g, 1, &x, 1, &a);
    CHECK(ac_graph_toposort(g, &err) != 0, "missing producer accepted");
    CHECK(strstr(err.msg, "'ghost'") && strstr(err.msg, "nothing produces"), "message: %s", err.msg);
    ac_graph_destroy(&g);

    g = ac_graph_new("bad3");
    x = ac_graph_add_tensor(g, "x", AC_DT_F32, 1, d);
    a = ac_graph_add_tensor(g, "a", AC_DT_F32, -1, NULL);
    node(g, "n1", "Relu", 1, (int[]){x}, a);
    node(g, "n2", "Sigmoid", 1, (int[]){x}, a);
    ac_graph_set_io(g, 1, &x, 1, &a);
    CHECK(ac_graph_toposort(g, &err) != 0, "double write accepted");
    CHECK(strstr(err.msg, "written by two nodes"), "message: %s", err.msg);
    ac_graph_destroy(&g);
}

static void test_unknown_op_is_an_error(void)
{
    ac_err err = {0};
    ac_graph *g = ac_graph_new("unk");
    g->opset = 13;
    int64_t d[1] = {4};
    int x = ac_graph_add_tensor(g, "x", AC_DT_F32, 1, d);
    int a = ac_graph_add_tensor(g, "a", AC_DT_F32, -1, NULL);
    node(g, "weird", "FooBar", 1, (int[]){x}, a);
    ac_graph_set_io(g, 1, &x, 1, &a);
    CHECK(ac_graph_toposort(g, &err) == 0, "%s", err.msg);
    CHECK(ac_graph_infer_shapes(g, &err) != 0, "unknown op accepted");
    CHECK(strstr(err.msg, "weird") && strstr(err.msg, "FooBar"), "message: %s", err.msg);
    ac_graph_destroy(&g);
}

static void test_arena(void)
{
    ac_arena *a = ac_arena_new(128);
    char *s = ac_arena_strdup(a, "hello");
    void *big = ac_arena_alloc(a, 10000);
    void *small = ac_arena_alloc(a, 3);
    CHECK(s && !strcmp(s, "hello"), "strdup");
    CHECK(big && ((uintptr_t)big % 64) == 0 && ((uintptr_t)small % 64) == 0, "alignment");
    CHECK(ac_arena_bytes(a) >= 10000 + 64 + 64, "bytes %zu", ac_arena_bytes(a));
    ac_arena_destroy(&a);
    CHECK(a == NULL, "destroy sets NULL");
}

/* Random blocks with random lifetimes: n of them, from the seed *s. */
static size_t random_blocks(ac_mem_block *b, int n, uint32_t *s)
{
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        int first = (int)(*s >> 27) - 1; /* -1..30 */
        *s = *s * 1664525u + 1013904223u;
        int len = (int)(*s >> 29);
        *s = *s * 1664525u + 1013904223u;
        b[i] = (ac_mem_block){.bytes = (*s >> 20) % 5000, .first = first, .last = first + len};
        sum += (b[i].bytes + AC_MEM_ALIGN - 1) / AC_MEM_ALIGN * AC_MEM_ALIGN + (b[i].bytes ? 0 : AC_MEM_ALIGN);
    }
    return sum;
}

/* Blocks that live at the same node and share memory, or lie outside the arena. */
static int misplaced_blocks(const ac_mem_block *b, int n, size_t total)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bad += !(b[i].offset % AC_MEM_ALIGN == 0 && b[i].offset + b[i].bytes <= total);
        for (int k = i + 1; k < n; k++) {
            bool time = b[i].first <= b[k].last && b[k].first <= b[i].last;
            bool mem = b[i].offset < b[k].offset + (b[k].bytes ? b[k].bytes : 1) &&
                       b[k].offset < b[i].offset + (b[i].bytes ? b[i].bytes : 1);
            bad += time && mem;
        }
    }
    return bad;
}

/* The memory plan: blocks alive at the same node never overlap in memory,
 * offsets are aligned, and the arena is no larger than all blocks end to end
 * (and smaller when lifetimes allow sharing). Random lifetimes, seeded. */
static void test_mem_plan(void)
{
    uint32_t s = 7;
    for (int round = 0; round < 200; round++) {
        ac_mem_block b[40];
        int n = 1 + round % 40;
        size_t sum = random_blocks(b, n, &s);
        size_t total = ac_mem_plan(b, n);
        CHECK(total <= sum, "round %d: arena %zu > %zu end to end", round, total, sum);
        CHECK(misplaced_blocks(b, n, total) == 0, "round %d: blocks misplaced", round);
    }
    /* a chain a -> b -> c -> d: a and c may share, b and d may share */
    ac_mem_block chain[4] = {{1000, -1, 0, 0}, {1000, 0, 1, 0}, {1000, 1, 2, 0}, {1000, 2, 3, 0}};
    CHECK(ac_mem_plan(chain, 4) == 2 * 1024, "chain of 4 in two buffers");
}

/* Several threads plan at once: the embedded cluster's workers prepare their
 * executors at the same time in one process. Each thread's plans must be as
 * sound as when planned alone (a planner with shared state gives overlapping
 * blocks here). */
typedef struct {
    uint32_t seed;
    int misplaced;
} plan_thread_arg;

static void *plan_many(void *argp)
{
    plan_thread_arg *a = argp;
    for (int round = 0; round < 3000; round++) {
        ac_mem_block b[200];
        int n = 100 + round % 100;
        random_blocks(b, n, &a->seed);
        a->misplaced += misplaced_blocks(b, n, ac_mem_plan(b, n));
    }
    return NULL;
}

static void test_mem_plan_concurrent(void)
{
    enum { NT = 4 };
    pthread_t th[NT];
    plan_thread_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (plan_thread_arg){.seed = 1000u + (uint32_t)i};
        CHECK(pthread_create(&th[i], NULL, plan_many, &args[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].misplaced == 0, "thread %d: %d misplaced blocks when planning alongside others", i,
              args[i].misplaced);
    }
}

int main(void)
{
    test_arena();
    test_mem_plan();
    test_mem_plan_concurrent();
    test_toposort_errors();
    test_unknown_op_is_an_error();
    test_passes_keep_values();
    if (failures) {
        fprintf(stderr, "graph_selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("graph_selftest: all passed\n");
    return 0;
}
