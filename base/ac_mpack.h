/* ac_mpack: a strict, bounds-checked msgpack reader for untrusted bytes.
 *
 * msgpack-c's unpacker allocates storage from a declared array/map/string
 * length before it checks that the bytes exist, so a few bytes of garbage can
 * ask for gigabytes. This reader allocates nothing: strings and binaries are
 * returned as pointers into the buffer, and every declared length is checked
 * against the bytes left before it is used (an array of n elements needs at
 * least n bytes, a map of n pairs 2n bytes), so a caller that allocates n
 * elements after a successful ac_mpack_read_array never allocates more than
 * the input's size allows.
 *
 * Every read_* consumes one value and returns true, or returns false when the
 * next value is not of the asked type or is truncated; after a false the
 * position is unspecified: the caller names the field in its error and stops.
 * Writing stays with msgpack-c (msgpack_packer). */
#ifndef AC_MPACK_H
#define AC_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *p; /* next byte */
    size_t left;      /* bytes from p to the end */
} ac_mpack_reader;

typedef enum {
    AC_MPACK_END = 0, /* no bytes left */
    AC_MPACK_NIL,
    AC_MPACK_BOOL,
    AC_MPACK_INT, /* any integer encoding (positive or negative) */
    AC_MPACK_F32,
    AC_MPACK_F64,
    AC_MPACK_STR,
    AC_MPACK_BIN,
    AC_MPACK_ARRAY,
    AC_MPACK_MAP,
    AC_MPACK_EXT,
    AC_MPACK_RESERVED /* 0xc1, never valid */
} ac_mpack_type;

void ac_mpack_reader_init(ac_mpack_reader *r, const void *buf, size_t len);

/* The type of the next value, without consuming it. */
ac_mpack_type ac_mpack_peek(const ac_mpack_reader *r);
const char *ac_mpack_type_name(ac_mpack_type t);

bool ac_mpack_read_nil(ac_mpack_reader *r);
bool ac_mpack_read_bool(ac_mpack_reader *r, bool *v);
/* Any integer encoding whose value fits the target (uint64 >= 0 / int64). */
bool ac_mpack_read_uint(ac_mpack_reader *r, uint64_t *v);
bool ac_mpack_read_int(ac_mpack_reader *r, int64_t *v);
/* read_f32 accepts float32 only; read_f64 float64 only (no silent conversion,
 * so values round-trip bit for bit). */
bool ac_mpack_read_f32(ac_mpack_reader *r, float *v);
bool ac_mpack_read_f64(ac_mpack_reader *r, double *v);
/* Pointer into the buffer, not NUL-terminated. */
bool ac_mpack_read_str(ac_mpack_reader *r, const char **s, size_t *len);
bool ac_mpack_read_bin(ac_mpack_reader *r, const uint8_t **b, size_t *len);
/* Headers: *n elements / pairs follow; n is checked against the bytes left. */
bool ac_mpack_read_array(ac_mpack_reader *r, uint32_t *n);
bool ac_mpack_read_map(ac_mpack_reader *r, uint32_t *n);

/* The next value is the string `s` (consumed only when it matches). */
bool ac_mpack_read_str_eq(ac_mpack_reader *r, const char *s);

/* Skips one whole value (nested arrays/maps included, without recursion). */
bool ac_mpack_skip(ac_mpack_reader *r);

#endif
