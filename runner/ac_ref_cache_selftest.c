/* ac_ref_cache: lookups by (key, first, n), copies not aliases, the byte
 * bound (other keys dropped first, a batch that cannot fit not kept), clear. */
#include <stdio.h>
#include <string.h>

#include "ac_check.h"
#include "ac_ref_cache.h"

static void test_put_get(void)
{
    ac_ref_cache *c = ac_ref_cache_new(1 << 20);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {7, 8};
    const float *outs[2] = {a, b};
    size_t elems[2] = {3, 1};
    CHECK(ac_ref_cache_put(c, 42, 10, 2, 2, outs, elems) == 1, "put");
    a[0] = -1; /* the cache holds a copy */
    const float *const *got = ac_ref_cache_get(c, 42, 10, 2);
    CHECK(got && got[0][0] == 1 && got[0][5] == 6 && got[1][1] == 8, "get");
    CHECK(!ac_ref_cache_get(c, 42, 10, 1) && !ac_ref_cache_get(c, 43, 10, 2) && !ac_ref_cache_get(c, 42, 12, 2),
          "other n, key or first must miss");
    int entries;
    size_t bytes;
    int64_t hits, misses;
    ac_ref_cache_stats(c, &entries, &bytes, &hits, &misses);
    CHECK(entries == 1 && bytes == 8 * sizeof(float) && hits == 1 && misses == 3, "stats %d %zu %lld %lld", entries,
          bytes, (long long)hits, (long long)misses);
    ac_ref_cache_clear(c);
    CHECK(!ac_ref_cache_get(c, 42, 10, 2), "cleared");
    ac_ref_cache_destroy(&c);
    CHECK(c == NULL, "destroy");
}

static void test_bound(void)
{
    float x[64] = {0};
    const float *outs[1] = {x};
    size_t elems[1] = {16};
    ac_ref_cache *c = ac_ref_cache_new(3 * 16 * sizeof(float)); /* three one-sample batches */
    for (int i = 0; i < 3; i++)
        CHECK(ac_ref_cache_put(c, 1, i, 1, 1, outs, elems) == 1, "put %d", i);
    CHECK(ac_ref_cache_put(c, 1, 3, 1, 1, outs, elems) == 0, "a fourth of the same key does not fit");
    CHECK(ac_ref_cache_get(c, 1, 0, 1) && ac_ref_cache_get(c, 1, 2, 1), "the first three stay");
    CHECK(ac_ref_cache_put(c, 2, 0, 1, 1, outs, elems) == 1, "a new key makes room");
    CHECK(!ac_ref_cache_get(c, 1, 0, 1) && ac_ref_cache_get(c, 2, 0, 1), "other keys dropped");
    CHECK(ac_ref_cache_put(c, 2, 1, 4, 1, outs, elems) == 0, "a batch larger than the bound is not kept");
    ac_ref_cache_destroy(&c);
}

int main(void)
{
    test_put_get();
    test_bound();
    if (failures) {
        fprintf(stderr, "ref_cache_selftest: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("ref_cache_selftest: %d checks passed\n", checks);
    return 0;
}
