/* Fuzz target: the farm codec (ac_msg_decode_frames) on arbitrary frames.
 * Input layout (so one byte string describes a multipart message):
 *   byte 0: bit 0 = direction (0 to the broker, 1 from the broker)
 *   then frames: 2-byte big-endian length + bytes; a short last frame takes
 *   what is left; at most 6 frames.
 * It must never crash, read out of bounds or allocate from an unchecked
 * length; a failure must come with a status and a message; whatever decodes
 * must encode, and decoding that encoding must give the same encoding again. */
#include "ac_msg_codec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static zmsg_t *reencode(const ac_msg *m, ac_msg_dir dir)
{
    zmsg_t *zm = NULL;
    ac_err err;
    if (ac_msg_encode(m, dir, &zm, &err) != AC_OK)
        abort(); /* a decoded message must be encodable */
    return zm;
}

static bool same_frames(zmsg_t *a, zmsg_t *b)
{
    if (zmsg_size(a) != zmsg_size(b))
        return false;
    for (zframe_t *x = zmsg_first(a), *y = zmsg_first(b); x; x = zmsg_next(a), y = zmsg_next(b))
        if (!zframe_eq(x, y))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ac_msg_dir dir = (data[0] & 1) ? AC_DIR_FROM_BROKER : AC_DIR_TO_BROKER;
    ac_bytes frames[6];
    size_t n = 0, pos = 1;
    while (pos < size && n < 6) {
        size_t len = pos + 2 <= size ? ((size_t)data[pos] << 8 | data[pos + 1]) : 0;
        pos += 2;
        if (pos > size)
            pos = size;
        if (len > size - pos)
            len = size - pos;
        frames[n].data = data + pos;
        frames[n].len = len;
        n++;
        pos += len;
    }
    ac_msg m;
    ac_err err;
    ac_err_clear(&err);
    int rc = ac_msg_decode_frames(frames, n, dir, &m, &err);
    if (rc != AC_OK) {
        if (err.code == AC_OK || err.msg[0] == '\0' || m.alloc_)
            abort();
        return 0;
    }
    zmsg_t *once = reencode(&m, dir);
    ac_msg again;
    if (ac_msg_decode(&once, dir, &again, &err) != AC_OK)
        abort(); /* our own encoding must decode */
    zmsg_t *twice = reencode(&again, dir);
    zmsg_t *first = reencode(&m, dir);
    if (!same_frames(first, twice))
        abort();
    zmsg_destroy(&first);
    zmsg_destroy(&twice);
    ac_msg_reset(&again);
    ac_msg_reset(&m);
    return 0;
}
