/* ac_mpack: see ac_mpack.h. Tag bytes follow the msgpack specification
 * (https://github.com/msgpack/msgpack/blob/master/spec.md); multi-byte
 * lengths and numbers are big-endian. */
#include "ac_mpack.h"

#include <string.h>

void ac_mpack_reader_init(ac_mpack_reader *r, const void *buf, size_t len)
{
    r->p = buf;
    r->left = buf ? len : 0;
}

static bool take(ac_mpack_reader *r, size_t n, const uint8_t **out)
{
    if (r->left < n)
        return false;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

static bool take_be(ac_mpack_reader *r, size_t n, uint64_t *v)
{
    const uint8_t *b;
    if (!take(r, n, &b))
        return false;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = (*v << 8) | b[i];
    return true;
}

static bool take_tag(ac_mpack_reader *r, uint8_t *tag)
{
    const uint8_t *b;
    if (!take(r, 1, &b))
        return false;
    *tag = b[0];
    return true;
}

ac_mpack_type ac_mpack_peek(const ac_mpack_reader *r)
{
    if (r->left == 0)
        return AC_MPACK_END;
    uint8_t t = r->p[0];
    if (t <= 0x7f || t >= 0xe0)
        return AC_MPACK_INT;
    if (t <= 0x8f)
        return AC_MPACK_MAP;
    if (t <= 0x9f)
        return AC_MPACK_ARRAY;
    if (t <= 0xbf)
        return AC_MPACK_STR;
    switch (t) {
    case 0xc0: return AC_MPACK_NIL;
    case 0xc1: return AC_MPACK_RESERVED;
    case 0xc2:
    case 0xc3: return AC_MPACK_BOOL;
    case 0xc4:
    case 0xc5:
    case 0xc6: return AC_MPACK_BIN;
    case 0xc7:
    case 0xc8:
    case 0xc9: return AC_MPACK_EXT;
    case 0xca: return AC_MPACK_F32;
    case 0xcb: return AC_MPACK_F64;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: return AC_MPACK_EXT;
    case 0xd9:
    case 0xda:
    case 0xdb: return AC_MPACK_STR;
    case 0xdc:
    case 0xdd: return AC_MPACK_ARRAY;
    case 0xde:
    case 0xdf: return AC_MPACK_MAP;
    default: return AC_MPACK_INT; /* 0xcc-0xd3 */
    }
}

const char *ac_mpack_type_name(ac_mpack_type t)
{
    static const char *const names[] = {"end of data", "nil", "bool", "integer", "float32", "float64",
                                  "string", "binary", "array", "map", "extension",
                                  "reserved byte 0xc1"};
    return t >= AC_MPACK_END && t <= AC_MPACK_RESERVED ? names[t] : "?";
}

bool ac_mpack_read_nil(ac_mpack_reader *r)
{
    uint8_t t;
    return ac_mpack_peek(r) == AC_MPACK_NIL && take_tag(r, &t);
}

bool ac_mpack_read_bool(ac_mpack_reader *r, bool *v)
{
    uint8_t t;
    if (ac_mpack_peek(r) != AC_MPACK_BOOL || !take_tag(r, &t))
        return false;
    *v = t == 0xc3;
    return true;
}

/* Integer of any encoding as sign + magnitude: *neg set for negative values,
 * *mag the absolute value (up to 2^63 for negatives). */
static bool read_integer(ac_mpack_reader *r, bool *neg, uint64_t *mag)
{
    uint8_t t;
    uint64_t v;
    if (!take_tag(r, &t))
        return false;
    *neg = false;
    if (t <= 0x7f) {
        *mag = t;
        return true;
    }
    if (t >= 0xe0) { /* negative fixint: -32..-1 */
        *neg = true;
        *mag = (uint64_t)(256 - t);
        return true;
    }
    static const uint8_t widths[] = {1, 2, 4, 8};
    if (t >= 0xcc && t <= 0xcf) {
        if (!take_be(r, widths[t - 0xcc], &v))
            return false;
        *mag = v;
        return true;
    }
    if (t >= 0xd0 && t <= 0xd3) {
        unsigned w = widths[t - 0xd0];
        if (!take_be(r, w, &v))
            return false;
        /* Two's complement of width w bytes. */
        uint64_t sign = (uint64_t)1 << (8 * w - 1);
        if (v & sign) {
            *neg = true;
            *mag = (w == 8 ? 0 : ((uint64_t)1 << (8 * w))) - v; /* 2^(8w) - v, mod 2^64 for w = 8 */
        } else {
            *mag = v;
        }
        return true;
    }
    return false;
}

bool ac_mpack_read_uint(ac_mpack_reader *r, uint64_t *v)
{
    bool neg;
    uint64_t mag;
    if (ac_mpack_peek(r) != AC_MPACK_INT || !read_integer(r, &neg, &mag))
        return false;
    if (neg && mag != 0)
        return false;
    *v = mag;
    return true;
}

bool ac_mpack_read_int(ac_mpack_reader *r, int64_t *v)
{
    bool neg;
    uint64_t mag;
    if (ac_mpack_peek(r) != AC_MPACK_INT || !read_integer(r, &neg, &mag))
        return false;
    if (!neg) {
        if (mag > (uint64_t)INT64_MAX)
            return false;
        *v = (int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX + 1)
            return false;
        *v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    }
    return true;
}

bool ac_mpack_read_f32(ac_mpack_reader *r, float *v)
{
    uint8_t t;
    uint64_t bits;
    if (ac_mpack_peek(r) != AC_MPACK_F32 || !take_tag(r, &t) || !take_be(r, 4, &bits))
        return false;
    uint32_t b32 = (uint32_t)bits;
    memcpy(v, &b32, sizeof *v);
    return true;
}

bool ac_mpack_read_f64(ac_mpack_reader *r, double *v)
{
    uint8_t t;
    uint64_t bits;
    if (ac_mpack_peek(r) != AC_MPACK_F64 || !take_tag(r, &t) || !take_be(r, 8, &bits))
        return false;
    memcpy(v, &bits, sizeof *v);
    return true;
}

bool ac_mpack_read_str(ac_mpack_reader *r, const char **s, size_t *len)
{
    uint8_t t;
    uint64_t n;
    const uint8_t *b;
    if (!take_tag(r, &t))
        return false;
    if (t >= 0xa0 && t <= 0xbf)
        n = t & 0x1fu;
    else if (!((t == 0xd9 && take_be(r, 1, &n)) || (t == 0xda && take_be(r, 2, &n)) ||
               (t == 0xdb && take_be(r, 4, &n))))
        return false;
    if (!take(r, (size_t)n, &b))
        return false;
    *s = (const char *)b;
    *len = (size_t)n;
    return true;
}

bool ac_mpack_read_bin(ac_mpack_reader *r, const uint8_t **b, size_t *len)
{
    uint8_t t;
    uint64_t n;
    if (!take_tag(r, &t))
        return false;
    if (!((t == 0xc4 && take_be(r, 1, &n)) || (t == 0xc5 && take_be(r, 2, &n)) ||
          (t == 0xc6 && take_be(r, 4, &n))))
        return false;
    if (!take(r, (size_t)n, b))
        return false;
    *len = (size_t)n;
    return true;
}

bool ac_mpack_read_array(ac_mpack_reader *r, uint32_t *n)
{
    uint8_t t;
    uint64_t v;
    if (!take_tag(r, &t))
        return false;
    if (t >= 0x90 && t <= 0x9f)
        v = t & 0x0fu;
    else if (!((t == 0xdc && take_be(r, 2, &v)) || (t == 0xdd && take_be(r, 4, &v))))
        return false;
    if (v > r->left) /* every element takes at least one byte */
        return false;
    *n = (uint32_t)v;
    return true;
}

bool ac_mpack_read_map(ac_mpack_reader *r, uint32_t *n)
{
    uint8_t t;
    uint64_t v;
    if (!take_tag(r, &t))
        return false;
    if (t >= 0x80 && t <= 0x8f)
        v = t & 0x0fu;
    else if (!((t == 0xde && take_be(r, 2, &v)) || (t == 0xdf && take_be(r, 4, &v))))
        return false;
    if (v > r->left / 2) /* every key and every value takes at least one byte */
        return false;
    *n = (uint32_t)v;
    return true;
}

bool ac_mpack_read_str_eq(ac_mpack_reader *r, const char *s)
{
    ac_mpack_reader save = *r;
    const char *got;
    size_t len;
    if (ac_mpack_read_str(r, &got, &len) && len == strlen(s) && memcmp(got, s, len) == 0)
        return true;
    *r = save;
    return false;
}

bool ac_mpack_skip(ac_mpack_reader *r)
{
    uint64_t pending = 1; /* values still to skip */
    while (pending > 0) {
        pending--;
        const uint8_t *b;
        size_t len;
        uint32_t n;
        switch (ac_mpack_peek(r)) {
        case AC_MPACK_NIL:
        case AC_MPACK_BOOL:
            if (!take(r, 1, &b))
                return false;
            break;
        case AC_MPACK_INT: {
            int64_t i;
            uint64_t u;
            ac_mpack_reader save = *r;
            if (!ac_mpack_read_int(r, &i)) {
                *r = save;
                if (!ac_mpack_read_uint(r, &u))
                    return false;
            }
            break;
        }
        case AC_MPACK_F32:
            if (!take(r, 5, &b))
                return false;
            break;
        case AC_MPACK_F64:
            if (!take(r, 9, &b))
                return false;
            break;
        case AC_MPACK_STR: {
            const char *s;
            if (!ac_mpack_read_str(r, &s, &len))
                return false;
            break;
        }
        case AC_MPACK_BIN:
            if (!ac_mpack_read_bin(r, &b, &len))
                return false;
            break;
        case AC_MPACK_ARRAY:
            if (!ac_mpack_read_array(r, &n))
                return false;
            pending += n;
            break;
        case AC_MPACK_MAP:
            if (!ac_mpack_read_map(r, &n))
                return false;
            pending += 2 * (uint64_t)n;
            break;
        case AC_MPACK_EXT: {
            uint8_t t = r->p[0];
            uint64_t size;
            if (!take(r, 1, &b))
                return false;
            if (t >= 0xd4 && t <= 0xd8)
                size = (uint64_t)1 << (t - 0xd4);
            else if (!take_be(r, t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4, &size))
                return false;
            if (size > SIZE_MAX - 1 || !take(r, (size_t)size + 1, &b)) /* type byte + data */
                return false;
            break;
        }
        default: return false;
        }
        if (pending > r->left) /* each pending value needs at least one byte */
            return false;
    }
    return true;
}
