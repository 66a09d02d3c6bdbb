/* Fuzz target: a buffer as an --input_data_shape string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    ac_onnx_shape shapes[4];
    int n = -1;
    ac_err err;
    ac_err_clear(&err);
    if (ac_onnx_parse_shapes(s, shapes, 4, &n, &err) == 0) {
        if (n < 1 || n > 4)
            abort();
        for (int i = 0; i < n; i++) {
            if (shapes[i].ndim < 0 || shapes[i].ndim > AC_MAX_DIMS)
                abort();
            for (int d = 0; d < shapes[i].ndim; d++)
                if (shapes[i].dims[d] < 0 || shapes[i].dims[d] >= ((int64_t)1 << 31))
                    abort();
        }
    } else if (!err.msg[0]) {
        abort();
    }
    free(s);
    return 0;
}
