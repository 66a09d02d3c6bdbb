/* Reference (__ref) kernels for every fp32 op except convolution and GEMM
 * (kernels/ac_conv_f32.h). They define the semantics of the ops: graph/ac_ops.c
 * validates a node, fills one of the plain parameter structs below and calls
 * the kernel; fast versions, when they exist, are tested against these.
 *
 * Conventions:
 * - No graph types here: shapes are explicit int64 dims, element types are
 *   ONNX TensorProto codes (ac_ref_type), strides are in elements.
 * - Every kernel takes (ith, nth) and computes only its share of the output,
 *   split over the outermost independent loop with ac_ref_range(); each output
 *   element is computed by exactly one thread with the same operations in the
 *   same order whatever nth is, so results are identical for any thread count.
 * - Data-movement kernels (concat, split, slice, transpose, pad, gather,
 *   resize-nearest, copy) work on raw elements of elem_size bytes and so serve
 *   every dtype.
 * - Kernels that can fail on data (integer division by zero, Gather index out
 *   of range) return non-zero; the others return void. */
#ifndef AC_REF_F32_H
#define AC_REF_F32_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AC_REF_MAX_DIMS 8

/* Element types, with ONNX TensorProto.DataType codes (same as ac_dtype). */
typedef enum {
    AC_REF_F32 = 1,
    AC_REF_U8 = 2,
    AC_REF_I8 = 3,
    AC_REF_I32 = 6,
    AC_REF_I64 = 7,
    AC_REF_BOOL = 9,
    AC_REF_F64 = 11
} ac_ref_type;

/* Thread ith's share [*lo, *hi) of n items: contiguous, near-equal parts. */
static inline void ac_ref_range(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    if (nth < 1)
        nth = 1;
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* ---- copy ---------------------------------------------------------------- */

/* y = x, bytes split by thread (Identity, Reshape, Flatten, Squeeze, Dropout...). */
void ac_copy__ref(const void *x, void *y, size_t bytes, int ith, int nth);

/* ---- element-wise ------------------------------------------------------- */

typedef enum {
    AC_UNARY_RELU,         /* max(x, 0) */
    AC_UNARY_LEAKY_RELU,   /* x >= 0 ? x : alpha * x */
    AC_UNARY_CLIP,         /* min(max(x, alpha), beta) (Relu6: alpha 0, beta 6) */
    AC_UNARY_SIGMOID,      /* 1 / (1 + exp(-x)) */
    AC_UNARY_TANH,
    AC_UNARY_HARD_SIGMOID, /* max(0, min(1, alpha * x + beta)) */
    AC_UNARY_HARD_SWISH,   /* x * max(0, min(1, x / 6 + 0.5)) */
    AC_UNARY_SILU,         /* x * sigmoid(x) */
    AC_UNARY_EXP,
    AC_UNARY_SQRT          /* sqrt(x): NaN for x < 0, as IEEE */
} ac_unary_kind;

typedef struct {
    ac_unary_kind kind;
    float alpha, beta;
} ac_unary_params;

void ac_unary_f32__ref(const ac_unary_params *p, const float *x, float *y, int64_t n, int ith,
                       int nth);

/* Numpy broadcasting: both operands are viewed with the output's rank; a
 * stride of 0 repeats an operand along a dimension of size 1. */
typedef struct {
    int ndim; /* 0 for scalars */
    int64_t dims[AC_REF_MAX_DIMS];
    int64_t a_strides[AC_REF_MAX_DIMS];
    int64_t b_strides[AC_REF_MAX_DIMS];
} ac_bcast_shape;

typedef enum {
    AC_BINARY_ADD,
    AC_BINARY_SUB,
    AC_BINARY_MUL,
    AC_BINARY_DIV,
    AC_BINARY_PRELU /* a >= 0 ? a : a * b (b is the slope) */
} ac_binary_kind;

/* Rows of the broadcast output: all dims but the last. Thread shares are rows;
 * the innermost dim is walked with the operands' strides. */
int64_t ac_bcast_rows(const ac_bcast_shape *s);
/* Element offsets of row r in a and b. */
void ac_bcast_row_offsets(const ac_bcast_shape *s, int64_t r, int64_t *ao, int64_t *bo);

void ac_binary_f32__ref(ac_binary_kind k, const ac_bcast_shape *s, const float *a, const float *b,
                        float *y, int ith, int nth);
/* Integer arithmetic wraps on overflow (two's complement); division truncates
 * toward zero. Returns non-zero on a division by zero or INT_MIN / -1 (the
 * output element is then set to 0). */
int ac_binary_i64__ref(ac_binary_kind k, const ac_bcast_shape *s, const int64_t *a,
                       const int64_t *b, int64_t *y, int ith, int nth);
int ac_binary_i32__ref(ac_binary_kind k, const ac_bcast_shape *s, const int32_t *a,
                       const int32_t *b, int32_t *y, int ith, int nth);

/* Element type conversion. Float to integer truncates toward zero and
 * saturates at the target's range (NaN gives 0); anything to bool is x != 0. */
void ac_cast__ref(ac_ref_type from, const void *x, ac_ref_type to, void *y, int64_t n, int ith,
                  int nth);

/* ---- normalisation / softmax -------------------------------------------- */

/* y = scale[c] * (x - mean[c]) / sqrt(var[c] + eps) + bias[c], x is [n][c][inner]. */
typedef struct {
    int64_t n, c, inner;
    float eps;
} ac_batchnorm_shape;

void ac_batchnorm_f32__ref(const ac_batchnorm_shape *s, const float *x, const float *scale,
                           const float *bias, const float *mean, const float *var, float *y,
                           int ith, int nth);

/* Softmax over the middle axis of x viewed as [outer][len][inner]:
 * y = exp(x - max) / sum(exp(x - max)). */
typedef struct {
    int64_t outer, len, inner;
} ac_softmax_shape;

void ac_softmax_f32__ref(const ac_softmax_shape *s, const float *x, float *y, int ith, int nth);

/* ---- pooling ------------------------------------------------------------- */

/* Up to 3 spatial dims; 1-D and 2-D pools use leading dims of 1 (kernel 1,
 * stride 1, pad 0). x is [n][c][d][h][w]. pad_end is the explicit padding at
 * the end of each dim; outputs may still read past it (ceil_mode). */
typedef struct {
    int64_t n, c;
    int64_t in[3], out[3];
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
    bool count_include_pad; /* average: divide by the window clipped to the padded input */
} ac_pool_shape;

/* Max over the window's in-bounds elements (-inf when none). */
void ac_maxpool_f32__ref(const ac_pool_shape *s, const float *x, float *y, int ith, int nth);
/* Mean over the window; the divisor counts in-bounds elements, or with
 * count_include_pad the window clipped to [-pad_begin, in + pad_end). */
void ac_avgpool_f32__ref(const ac_pool_shape *s, const float *x, float *y, int ith, int nth);

/* Max or mean over each of `rows` contiguous runs of `len` elements. */
void ac_global_pool_f32__ref(bool is_max, int64_t rows, int64_t len, const float *x, float *y,
                             int ith, int nth);

/* Mean over the axes with reduce[i] set; y has the kept axes in order. */
typedef struct {
    int ndim;
    int64_t dims[AC_REF_MAX_DIMS];
    bool reduce[AC_REF_MAX_DIMS];
} ac_reduce_shape;

void ac_reduce_mean_f32__ref(const ac_reduce_shape *s, const float *x, float *y, int ith,
                             int nth);

/* ---- transposed convolution ---------------------------------------------- */

/* Up to 3 spatial dims (1-D/2-D use leading 1s). x is [n][c_in][in...],
 * w is [c_in][c_out/groups][k...], y is [n][c_out][out...]:
 * y[o] = bias + sum over input positions i and taps k with
 *        o * 1 + pad_begin = i * stride + k * dilation. */
typedef struct {
    int64_t n, c_in, c_out, groups;
    int64_t in[3], out[3];
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3];
} ac_conv_transpose_shape;

void ac_conv_transpose_f32__ref(const ac_conv_transpose_shape *s, const float *x, const float *w,
                                const float *bias, float *y, int ith, int nth);

/* ---- data movement (any element type) ------------------------------------ */

/* Concat along an axis: the inputs are [outer][len_i * inner]; chunk[i] is
 * len_i * inner, in elements. */
void ac_concat__ref(size_t elem_size, int64_t outer, int ninputs, const int64_t *chunk,
                    const void *const *x, void *y, int ith, int nth);
/* Split: the inverse of concat; y[i] may be NULL (output not needed). */
void ac_split__ref(size_t elem_size, int64_t outer, int noutputs, const int64_t *chunk,
                   const void *x, void *const *y, int ith, int nth);

/* y[i...] = x[start + i * step ...] per dim; steps may be negative; the
 * caller has clamped start/out so that every read is in bounds. */
typedef struct {
    int ndim;
    int64_t in_dims[AC_REF_MAX_DIMS], out_dims[AC_REF_MAX_DIMS];
    int64_t start[AC_REF_MAX_DIMS], step[AC_REF_MAX_DIMS];
} ac_slice_shape;

void ac_slice__ref(size_t elem_size, const ac_slice_shape *s, const void *x, void *y, int ith,
                   int nth);

/* y dims are in_dims[perm[i]]. */
typedef struct {
    int ndim;
    int64_t in_dims[AC_REF_MAX_DIMS];
    int perm[AC_REF_MAX_DIMS];
} ac_transpose_shape;

void ac_transpose__ref(size_t elem_size, const ac_transpose_shape *s, const void *x, void *y,
                       int ith, int nth);

typedef enum { AC_PAD_CONSTANT, AC_PAD_REFLECT, AC_PAD_EDGE } ac_pad_mode;

/* out_dims[i] = pad_begin[i] + in_dims[i] + pad_end[i]; negative pads crop.
 * value: elem_size bytes written in CONSTANT mode. REFLECT needs in_dims >= 2
 * and EDGE needs in_dims >= 1 on every padded dim (checked by the caller). */
typedef struct {
    int ndim;
    ac_pad_mode mode;
    int64_t in_dims[AC_REF_MAX_DIMS], out_dims[AC_REF_MAX_DIMS];
    int64_t pad_begin[AC_REF_MAX_DIMS];
} ac_pad_shape;

void ac_pad__ref(size_t elem_size, const ac_pad_shape *s, const void *value, const void *x,
                 void *y, int ith, int nth);

/* x is [outer][axis_len][inner]; y is [outer][nidx][inner]; indices are int64
 * (or int32 when idx32) and may be negative (counted from the end).
 * Returns non-zero when an index is out of [-axis_len, axis_len). */
int ac_gather__ref(size_t elem_size, int64_t outer, int64_t axis_len, int64_t inner,
                   const void *indices, bool idx32, int64_t nidx, const void *x, void *y, int ith,
                   int nth);

/* ---- resize ---------------------------------------------------------------- */

typedef enum {
    AC_COORD_HALF_PIXEL,
    AC_COORD_PYTORCH_HALF_PIXEL,
    AC_COORD_ALIGN_CORNERS,
    AC_COORD_ASYMMETRIC,
    AC_COORD_TF_HALF_PIXEL_FOR_NN
} ac_coord_mode;

typedef enum {
    AC_NEAREST_ROUND_PREFER_FLOOR,
    AC_NEAREST_ROUND_PREFER_CEIL,
    AC_NEAREST_FLOOR,
    AC_NEAREST_CEIL
} ac_nearest_mode;

/* Input coordinate of output coordinate x_out along one axis (ONNX Resize
 * coordinate_transformation_mode); scale is out / in as given or derived
 * from sizes; len_out is the integer output length. */
float ac_resize_coord(ac_coord_mode mode, int64_t x_out, float scale, int64_t len_in,
                      int64_t len_out);
/* Nearest input index for an input coordinate, clamped to [0, len_in). */
int64_t ac_resize_nearest_index(ac_nearest_mode mode, float x_in, int64_t len_in);

/* Nearest resize of any rank: src[d][i] is the input index of output index i
 * along dim d (from the two functions above). */
typedef struct {
    int ndim;
    int64_t in_dims[AC_REF_MAX_DIMS], out_dims[AC_REF_MAX_DIMS];
    const int64_t *src[AC_REF_MAX_DIMS];
} ac_resize_nearest_shape;

void ac_resize_nearest__ref(size_t elem_size, const ac_resize_nearest_shape *s, const void *x,
                            void *y, int ith, int nth);

/* Bilinear resize of the last two dims of x viewed as [outer][h_in][w_in].
 * For each output row/column: input indices i0, i1 and the weight l1 of i1
 * (l0 = 1 - l1), from ac_resize_linear_taps(). */
typedef struct {
    int64_t outer, h_in, w_in, h_out, w_out;
    const int64_t *h0, *h1, *w0, *w1;
    const float *hl, *wl;
} ac_resize_linear_shape;

/* Taps for one axis: x_in is clamped to [0, len_in - 1]. */
void ac_resize_linear_taps(float x_in, int64_t len_in, int64_t *i0, int64_t *i1, float *l1);

void ac_resize_linear_f32__ref(const ac_resize_linear_shape *s, const float *x, float *y, int ith,
                               int nth);

#endif
