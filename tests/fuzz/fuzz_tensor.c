/* Fuzz target: a buffer as a serialized TensorProto (backend test data). */
#include <stdint.h>
#include <stdlib.h>

#include "ac_onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_onnx_tensor t;
    ac_err err;
    ac_err_clear(&err);
    if (ac_onnx_tensor_from_buffer(data, size, "fuzz.pb", &t, &err) == 0) {
        /* The data present bounds the element count, so the product cannot
         * overflow unless a dim is 0 (then it is 0). */
        int64_t n = 1;
        for (int i = 0; i < t.ndim; i++)
            if (t.dims[i] == 0)
                n = 0;
        for (int i = 0; i < t.ndim && n; i++)
            n *= t.dims[i];
        if (t.bytes != (size_t)n * ac_dtype_size(t.dtype) || (t.bytes && !t.data))
            abort();
        /* Touch every byte so ASan checks the allocation size. */
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < t.bytes; i++)
            sum ^= ((const uint8_t *)t.data)[i];
        (void)sum;
        ac_onnx_tensor_free(&t);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
