/* ac_bigbuf: activation buffers of many megabytes. A batch of 100 through
 * MobileNetV2 holds 186 MB of fp32 activations; touching that for the first
 * time in 4 KiB pages cost 8 % of a whole quantize command in page faults.
 * Buffers of 4 MiB and more are aligned to 2 MiB and advised as transparent
 * huge pages (honoured where the kernel's THP mode is "madvise" or
 * "always"), which takes 512 times fewer faults; smaller ones are plain
 * 64-byte aligned allocations. Free with free(). */
#ifndef AC_BIGBUF_H
#define AC_BIGBUF_H

#include <stddef.h>

/* *p = bytes (at least 1) of uninitialised memory; 0, or -1 when out of memory. */
int ac_bigbuf_alloc(void **p, size_t bytes);

#endif
