#include "ac_record.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static const char *const dt_names[] = {"float32", "float64", "float16", "uint8", "int8", "int16", "int32", "int64"};
static const size_t dt_sizes[] = {4, 8, 2, 1, 1, 2, 4, 8};

const char *ac_rec_dtype_name(ac_rec_dtype dt) { return (unsigned)dt < 8 ? dt_names[dt] : "?"; }
size_t ac_rec_dtype_size(ac_rec_dtype dt) { return (unsigned)dt < 8 ? dt_sizes[dt] : 0; }


/* Walks the msgpack bytes without allocating and checks that every declared
 * array/map/str/bin length fits in what is left, so a hostile length (2^32
 * elements in 5 bytes) is rejected before msgpack-c sizes its allocations by it.
 * Returns the value's size, or 0 when it is malformed or truncated. */
static size_t mp_check(const uint8_t *p, size_t len)
{
    size_t pos = 0, pending = 1;
#define NEED(k) do { if ((size_t)(k) > len - pos) return 0; } while (0)
    while (pending) {
        pending--;
        NEED(1);
        uint8_t b = p[pos++];
        uint64_t n = 0, skip = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            continue;
        if (b >= 0x80 && b <= 0x8f)
            n = 2u * (b & 0x0f);
        else if (b >= 0x90 && b <= 0x9f)
            n = b & 0x0f;
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1f;
        else
            switch (b) {
            case 0xc4: case 0xd9: NEED(1); skip = p[pos]; pos += 1; break;
            case 0xc5: case 0xda: NEED(2); skip = (uint64_t)p[pos] << 8 | p[pos + 1]; pos += 2; break;
            case 0xc6: case 0xdb: NEED(4); skip = (uint64_t)p[pos] << 24 | (uint64_t)p[pos + 1] << 16 | (uint64_t)p[pos + 2] << 8 | p[pos + 3]; pos += 4; break;
            case 0xc7: NEED(2); skip = (uint64_t)p[pos] + 1; pos += 1; break;
            case 0xc8: NEED(3); skip = ((uint64_t)p[pos] << 8 | p[pos + 1]) + 1; pos += 2; break;
            case 0xc9: NEED(5); skip = ((uint64_t)p[pos] << 24 | (uint64_t)p[pos + 1] << 16 | (uint64_t)p[pos + 2] << 8 | p[pos + 3]) + 1; pos += 4; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: NEED(2); n = (uint64_t)p[pos] << 8 | p[pos + 1]; pos += 2; break;
            case 0xdd: NEED(4); n = (uint64_t)p[pos] << 24 | (uint64_t)p[pos + 1] << 16 | (uint64_t)p[pos + 2] << 8 | p[pos + 3]; pos += 4; break;
            case 0xde: NEED(2); n = 2 * ((uint64_t)p[pos] << 8 | p[pos + 1]); pos += 2; break;
            case 0xdf: NEED(4); n = 2 * ((uint64_t)p[pos] << 24 | (uint64_t)p[pos + 1] << 16 | (uint64_t)p[pos + 2] << 8 | p[pos + 3]); pos += 4; break;
            default: return 0; /* 0xc1: never used */
            }
        NEED(skip);
        pos += skip;
        if (n > len - pos) /* every element takes at least one byte */
            return 0;
        pending += n;
    }
#undef NEED
    return pos;
}

static int key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && !memcmp(k->via.str.ptr, s, n);
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (key_is(&m->via.map.ptr[i].key, key))
            return &m->via.map.ptr[i].val;
    return NULL;
}

static int decode_tensor(const msgpack_object *o, int ti, const char *name, ac_rec_tensor *t, ac_err *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return ac_err_set(err, AC_E_INVALID, "%s: tensors[%d] is not a map", name, ti);
    const msgpack_object *shape = map_get(o, "shape"), *dtype = map_get(o, "dtype"), *data = map_get(o, "data");
    if (!shape || !dtype || !data)
        return ac_err_set(err, AC_E_INVALID, "%s: tensors[%d] lacks '%s' (a tensor has shape, dtype, data)", name, ti,
                          !shape ? "shape" : !dtype ? "dtype" : "data");
    if (shape->type != MSGPACK_OBJECT_ARRAY || shape->via.array.size < 1 || shape->via.array.size > AC_REC_MAX_DIMS)
        return ac_err_set(err, AC_E_INVALID, "%s: tensors[%d].shape must be an array of 1..%d dimensions", name, ti,
                          AC_REC_MAX_DIMS);
    t->rank = (int)shape->via.array.size;
    uint64_t elems = 1;
    for (int d = 0; d < t->rank; d++) {
        const msgpack_object *v = &shape->via.array.ptr[d];
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > ((uint64_t)1 << 40))
            return ac_err_set(err, AC_E_INVALID, "%s: tensors[%d].shape[%d] is not an integer in 0..2^40", name, ti, d);
        t->dims[d] = (int64_t)v->via.u64;
        if (t->dims[d] && elems > ((uint64_t)1 << 40) / (uint64_t)t->dims[d])
            return ac_err_set(err, AC_E_INVALID, "%s: tensors[%d].shape has more than 2^40 elements", name, ti);
        elems *= (uint64_t)t->dims[d];
    }
    if (dtype->type != MSGPACK_OBJECT_STR)
        return ac_err_set(err, AC_E_INVALID, "%s: tensors[%d].dtype is not a string", name, ti);
    int dt = -1;
    for (int k = 0; k < 8; k++)
        if (key_is(dtype, dt_names[k]))
            dt = k;
    if (dt < 0)
        return ac_err_set(err, AC_E_UNSUPPORTED,
                          "%s: tensors[%d].dtype '%.*s' is not one of float32, float64, float16, uint8, int8, int16, "
                          "int32, int64",
                          name, ti, (int)(dtype->via.str.size < 32 ? dtype->via.str.size : 32), dtype->via.str.ptr);
    t->dtype = (ac_rec_dtype)dt;
    if (data->type != MSGPACK_OBJECT_BIN)
        return ac_err_set(err, AC_E_INVALID, "%s: tensors[%d].data is not bin (raw bytes)", name, ti);
    uint64_t want = elems * dt_sizes[dt];
    if (data->via.bin.size != want)
        return ac_err_set(err, AC_E_INVALID,
                          "%s: tensors[%d].data has %u bytes; shape and dtype %s need %llu", name, ti,
                          (unsigned)data->via.bin.size, dt_names[dt], (unsigned long long)want);
    t->data = (const uint8_t *)data->via.bin.ptr;
    t->nbytes = data->via.bin.size;
    return AC_OK;
}

int ac_record_decode(const void *buf, size_t len, const char *name, ac_record *rec, ac_err *err)
{
    memset(rec, 0, sizeof *rec);
    size_t whole = mp_check(buf, len);
    if (whole == 0)
        return ac_err_set(err, AC_E_INVALID, "%s: not a msgpack value (malformed or truncated, %zu bytes)", name, len);
    if (whole != len)
        return ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes after the msgpack map", name, len - whole);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
    int rc = AC_OK;
    const msgpack_object *o = &u.data, *fmt, *ver, *ts;
    if (r != MSGPACK_UNPACK_SUCCESS) {
        rc = ac_err_set(err, AC_E_INVALID, "%s: not a msgpack value (%s, %zu bytes)", name,
                        r == MSGPACK_UNPACK_CONTINUE ? "truncated" : r == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory" : "malformed",
                        len);
    } else if (off != len) {
        rc = ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes after the msgpack map", name, len - off);
    } else if (o->type != MSGPACK_OBJECT_MAP) {
        rc = ac_err_set(err, AC_E_INVALID, "%s: the record is not a msgpack map", name);
    } else if (!(fmt = map_get(o, "format")) || !key_is(fmt, AC_REC_FORMAT)) {
        rc = ac_err_set(err, AC_E_INVALID, "%s: field 'format' must be \"%s\"", name, AC_REC_FORMAT);
    } else if (!(ver = map_get(o, "version")) || ver->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        rc = ac_err_set(err, AC_E_INVALID, "%s: field 'version' must be a positive integer", name);
    } else if (ver->via.u64 != AC_REC_VERSION) {
        rc = ac_err_set(err, AC_E_UNSUPPORTED, "%s: record version %llu; this build reads version %d", name,
                        (unsigned long long)ver->via.u64, AC_REC_VERSION);
    } else if (!(ts = map_get(o, "tensors")) || ts->type != MSGPACK_OBJECT_ARRAY || ts->via.array.size < 1 ||
               ts->via.array.size > AC_REC_MAX_TENSORS) {
        rc = ac_err_set(err, AC_E_INVALID, "%s: field 'tensors' must be an array of 1..%d tensors", name,
                        AC_REC_MAX_TENSORS);
    } else {
        rec->n = (int)ts->via.array.size;
        for (int i = 0; i < rec->n && !rc; i++) {
            rc = decode_tensor(&ts->via.array.ptr[i], i, name, &rec->t[i], err);
            if (!rc && rec->t[i].dims[0] < 1)
                rc = ac_err_set(err, AC_E_INVALID, "%s: tensors[%d] has batch (first dimension) 0", name, i);
            if (!rc && i > 0 && rec->t[i].dims[0] != rec->t[0].dims[0])
                rc = ac_err_set(err, AC_E_INVALID,
                                "%s: tensors[%d] has batch %lld but tensors[0] has %lld (one batch per record)", name,
                                i, (long long)rec->t[i].dims[0], (long long)rec->t[0].dims[0]);
        }
        rec->batch = rc ? 0 : rec->t[0].dims[0];
    }
    msgpack_unpacked_destroy(&u); /* bin data points into buf, not into the zone */
    if (rc)
        memset(rec, 0, sizeof *rec);
    return rc;
}

int ac_record_encode(const ac_rec_tensor *t, int n, uint8_t **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    if (n < 1 || n > AC_REC_MAX_TENSORS)
        return ac_err_set(err, AC_E_INVALID, "a record holds 1..%d tensors, got %d", AC_REC_MAX_TENSORS, n);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "format", 6);
    msgpack_pack_str_with_body(&pk, AC_REC_FORMAT, strlen(AC_REC_FORMAT));
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_unsigned_int(&pk, AC_REC_VERSION);
    msgpack_pack_str_with_body(&pk, "tensors", 7);
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "shape", 5);
        msgpack_pack_array(&pk, (size_t)t[i].rank);
        for (int d = 0; d < t[i].rank; d++)
            msgpack_pack_uint64(&pk, (uint64_t)t[i].dims[d]);
        const char *dn = ac_rec_dtype_name(t[i].dtype);
        msgpack_pack_str_with_body(&pk, "dtype", 5);
        msgpack_pack_str_with_body(&pk, dn, strlen(dn));
        msgpack_pack_str_with_body(&pk, "data", 4);
        msgpack_pack_bin_with_body(&pk, t[i].data, t[i].nbytes);
    }
    if (!sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return ac_err_set(err, AC_E_NOMEM, "out of memory encoding a record");
    }
    *len = sb.size;
    *buf = (uint8_t *)msgpack_sbuffer_release(&sb);
    return AC_OK;
}

size_t ac_rec_sample_elems(const ac_rec_tensor *t)
{
    size_t n = 1;
    for (int d = 1; d < t->rank; d++)
        n *= (size_t)t->dims[d];
    return n;
}

static float half_to_float(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

void ac_rec_to_f32(const ac_rec_tensor *t, size_t first, size_t count, float *out)
{
    const uint8_t *p = t->data + first * dt_sizes[t->dtype];
    /* memcpy per element: the data may be unaligned inside an LMDB page. */
    for (size_t i = 0; i < count; i++) {
        switch (t->dtype) {
        case AC_REC_F32: {
            if (i == 0) {
                memcpy(out, p, count * 4);
                return;
            }
            break;
        }
        case AC_REC_F64: { double v; memcpy(&v, p + 8 * i, 8); out[i] = (float)v; break; }
        case AC_REC_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); out[i] = half_to_float(v); break; }
        case AC_REC_U8: out[i] = p[i]; break;
        case AC_REC_I8: out[i] = (int8_t)p[i]; break;
        case AC_REC_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); out[i] = v; break; }
        case AC_REC_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); out[i] = (float)v; break; }
        case AC_REC_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); out[i] = (float)v; break; }
        }
    }
}
