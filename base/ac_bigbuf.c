#define _GNU_SOURCE
#include "ac_bigbuf.h"

#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_FROM ((size_t)4 << 20)

int ac_bigbuf_alloc(void **p, size_t bytes)
{
    if (bytes < HUGE_FROM)
        return posix_memalign(p, 64, bytes ? bytes : 1) == 0 ? 0 : -1;
    /* Whole huge pages, so the last one is not shared with other allocations. */
    const size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (posix_memalign(p, HUGE_PAGE, rounded) != 0)
        return -1;
    /* Only advice: where THP is off the buffer works the same with small pages. */
    (void)madvise(*p, rounded, MADV_HUGEPAGE);
    return 0;
}
