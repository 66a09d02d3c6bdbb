/* ac_sha256: SHA-256 (FIPS 180-4), incremental. Dataset content hashes use it
 * so workers can key their caches by what the data is, not where it lives. */
#ifndef AC_SHA256_H
#define AC_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t block[64];
    size_t fill;
} ac_sha256;

void ac_sha256_init(ac_sha256 *s);
void ac_sha256_update(ac_sha256 *s, const void *data, size_t len);
void ac_sha256_final(ac_sha256 *s, uint8_t out[32]);
/* Adds a 64-bit little-endian length, then the bytes: fields never run together. */
void ac_sha256_field(ac_sha256 *s, const void *data, size_t len);
/* The compression function over nblocks 64-byte blocks: the scalar oracle,
 * and the x86 SHA-extension kernel, which returns false (doing nothing) on a
 * CPU without them. ac_sha256_update uses the fast one where it can. */
void ac_sha256_blocks__ref(uint32_t h[8], const uint8_t *p, size_t nblocks);
bool ac_sha256_blocks_fast(uint32_t h[8], const uint8_t *p, size_t nblocks);
/* 64 lowercase hex digits + NUL. */
void ac_sha256_hex(const uint8_t digest[32], char out[65]);

#endif
