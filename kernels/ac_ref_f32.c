/* Reference kernels for the non-conv ops: the definition of their semantics.
 * Written for clarity; each splits its outermost independent loop by thread. */
#include "ac_ref_f32.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ---- copy ---------------------------------------------------------------- */

void ac_copy__ref(const void *x, void *y, size_t bytes, int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range((int64_t)bytes, ith, nth, &lo, &hi);
    if (hi > lo && x != y)
        memcpy((char *)y + lo, (const char *)x + lo, (size_t)(hi - lo));
}

/* ---- element-wise ------------------------------------------------------- */

static float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

static float unary_one(const ac_unary_params *p, float x)
{
    switch (p->kind) {
    case AC_UNARY_RELU: return x > 0.0f ? x : 0.0f;
    case AC_UNARY_LEAKY_RELU: return x >= 0.0f ? x : p->alpha * x;
    case AC_UNARY_CLIP: { /* min first, then max: min > max gives max (ONNX); NaN stays */
        float v = x < p->alpha ? p->alpha : x;
        return v > p->beta ? p->beta : v;
    }
    case AC_UNARY_SIGMOID: return sigmoidf(x);
    case AC_UNARY_TANH: return tanhf(x);
    case AC_UNARY_HARD_SIGMOID: return fmaxf(0.0f, fminf(1.0f, p->alpha * x + p->beta));
    case AC_UNARY_HARD_SWISH: return x * fmaxf(0.0f, fminf(1.0f, x / 6.0f + 0.5f));
    case AC_UNARY_SILU: return x * sigmoidf(x);
    case AC_UNARY_EXP: return expf(x);
    case AC_UNARY_SQRT: return sqrtf(x);
    }
    return x;
}

void ac_unary_f32__ref(const ac_unary_params *p, const float *x, float *y, int64_t n, int ith,
                       int nth)
{
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        y[i] = unary_one(p, x[i]);
}

int64_t ac_bcast_rows(const ac_bcast_shape *s)
{
    int64_t rows = 1;
    for (int d = 0; d + 1 < s->ndim; d++)
        rows *= s->dims[d];
    return rows;
}

void ac_bcast_row_offsets(const ac_bcast_shape *s, int64_t r, int64_t *ao, int64_t *bo)
{
    int64_t a = 0, b = 0;
    for (int d = s->ndim - 2; d >= 0; d--) {
        int64_t i = r % s->dims[d];
        r /= s->dims[d];
        a += i * s->a_strides[d];
        b += i * s->b_strides[d];
    }
    *ao = a;
    *bo = b;
}

void ac_binary_f32__ref(ac_binary_kind k, const ac_bcast_shape *s, const float *a, const float *b,
                        float *y, int ith, int nth)
{
    int64_t len = s->ndim ? s->dims[s->ndim - 1] : 1;
    int64_t as = s->ndim ? s->a_strides[s->ndim - 1] : 0;
    int64_t bs = s->ndim ? s->b_strides[s->ndim - 1] : 0;
    int64_t lo, hi;
    ac_ref_range(ac_bcast_rows(s), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t ao, bo;
        ac_bcast_row_offsets(s, r, &ao, &bo);
        const float *pa = a + ao, *pb = b + bo;
        float *py = y + r * len;
        for (int64_t i = 0; i < len; i++) {
            float u = pa[i * as], v = pb[i * bs];
            switch (k) {
            case AC_BINARY_ADD: py[i] = u + v; break;
            case AC_BINARY_SUB: py[i] = u - v; break;
            case AC_BINARY_MUL: py[i] = u * v; break;
            case AC_BINARY_DIV: py[i] = u / v; break;
            case AC_BINARY_PRELU: py[i] = u >= 0.0f ? u : u * v; break;
            }
        }
    }
}

/* Integer version, one body for both widths. Arithmetic goes through the
 * unsigned type so that overflow wraps instead of being undefined. */
#define AC_BINARY_INT_BODY(T, UT, TMIN)                                                        \
    int bad = 0;                                                                               \
    int64_t len = s->ndim ? s->dims[s->ndim - 1] : 1;                                          \
    int64_t as = s->ndim ? s->a_strides[s->ndim - 1] : 0;                                      \
    int64_t bs = s->ndim ? s->b_strides[s->ndim - 1] : 0;                                      \
    int64_t lo, hi;                                                                            \
    ac_ref_range(ac_bcast_rows(s), ith, nth, &lo, &hi);                                           \
    for (int64_t r = lo; r < hi; r++) {                                                        \
        int64_t ao, bo;                                                                        \
        ac_bcast_row_offsets(s, r, &ao, &bo);                                                     \
        const T *pa = a + ao, *pb = b + bo;                                                    \
        T *py = y + r * len;                                                                   \
        for (int64_t i = 0; i < len; i++) {                                                    \
            T u = pa[i * as], v = pb[i * bs];                                                  \
            switch (k) {                                                                       \
            case AC_BINARY_ADD: py[i] = (T)((UT)u + (UT)v); break;                             \
            case AC_BINARY_SUB: py[i] = (T)((UT)u - (UT)v); break;                             \
            case AC_BINARY_MUL: py[i] = (T)((UT)u * (UT)v); break;                             \
            case AC_BINARY_DIV:                                                                \
                if (v == 0 || (u == TMIN && v == -1)) {                                        \
                    py[i] = 0;                                                                 \
                    bad = 1;                                                                   \
                } else {                                                                       \
                    py[i] = u / v;                                                             \
                }                                                                              \
                break;                                                                         \
            case AC_BINARY_PRELU: py[i] = u >= 0 ? u : (T)((UT)u * (UT)v); break;              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    return bad;

int ac_binary_i64__ref(ac_binary_kind k, const ac_bcast_shape *s, const int64_t *a,
                       const int64_t *b, int64_t *y, int ith, int nth)
{
    AC_BINARY_INT_BODY(int64_t, uint64_t, INT64_MIN)
}

int ac_binary_i32__ref(ac_binary_kind k, const ac_bcast_shape *s, const int32_t *a,
                       const int32_t *b, int32_t *y, int ith, int nth)
{
    AC_BINARY_INT_BODY(int32_t, uint32_t, INT32_MIN)
}

/* ---- cast ------------------------------------------------------------------ */

static double load_f64(ac_ref_type t, const void *x, int64_t i)
{
    switch (t) {
    case AC_REF_F32: return ((const float *)x)[i];
    case AC_REF_F64: return ((const double *)x)[i];
    case AC_REF_U8: return ((const uint8_t *)x)[i];
    case AC_REF_I8: return ((const int8_t *)x)[i];
    case AC_REF_I32: return ((const int32_t *)x)[i];
    case AC_REF_I64: return (double)((const int64_t *)x)[i];
    case AC_REF_BOOL: return ((const uint8_t *)x)[i] ? 1.0 : 0.0;
    }
    return 0.0;
}

static bool is_float_type(ac_ref_type t)
{
    return t == AC_REF_F32 || t == AC_REF_F64;
}

static int64_t load_i64(ac_ref_type t, const void *x, int64_t i)
{
    if (t == AC_REF_I64)
        return ((const int64_t *)x)[i];
    return (int64_t)load_f64(t, x, i); /* exact for every other integer type */
}

/* Float to integer: truncate toward zero, saturate at [lo, hi], NaN -> 0.
 * flo/fhi are the bounds as doubles; fhi may round up (2^63), hence >=. */
static int64_t float_to_int(double v, double flo, double fhi, int64_t lo, int64_t hi)
{
    if (v != v)
        return 0;
    if (v <= flo)
        return lo;
    if (v >= fhi)
        return hi;
    return (int64_t)v;
}

void ac_cast__ref(ac_ref_type from, const void *x, ac_ref_type to, void *y, int64_t n, int ith,
                  int nth)
{
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    bool ffloat = is_float_type(from);
    for (int64_t i = lo; i < hi; i++) {
        double v = ffloat ? load_f64(from, x, i) : 0.0;
        int64_t iv = ffloat ? 0 : load_i64(from, x, i);
        switch (to) {
        case AC_REF_F32: ((float *)y)[i] = ffloat ? (float)v : (float)iv; break;
        case AC_REF_F64: ((double *)y)[i] = ffloat ? v : (double)iv; break;
        case AC_REF_BOOL: ((uint8_t *)y)[i] = ffloat ? (v != 0.0) : (iv != 0); break;
        case AC_REF_I64:
            ((int64_t *)y)[i] =
                ffloat ? float_to_int(v, -9223372036854775808.0, 9223372036854775808.0,
                                      INT64_MIN, INT64_MAX)
                       : iv;
            break;
        case AC_REF_I32:
            /* Integer narrowing keeps the low bits (two's complement), like numpy. */
            ((int32_t *)y)[i] = ffloat ? (int32_t)float_to_int(v, INT32_MIN, INT32_MAX,
                                                               INT32_MIN, INT32_MAX)
                                       : (int32_t)(uint32_t)(uint64_t)iv;
            break;
        case AC_REF_I8:
            ((int8_t *)y)[i] = ffloat ? (int8_t)float_to_int(v, INT8_MIN, INT8_MAX, INT8_MIN,
                                                             INT8_MAX)
                                      : (int8_t)(uint8_t)(uint64_t)iv;
            break;
        case AC_REF_U8:
            ((uint8_t *)y)[i] =
                ffloat ? (uint8_t)float_to_int(v, 0, UINT8_MAX, 0, UINT8_MAX) : (uint8_t)iv;
            break;
        }
    }
}

/* ---- normalisation / softmax -------------------------------------------- */

void ac_batchnorm_f32__ref(const ac_batchnorm_shape *s, const float *x, const float *scale,
                           const float *bias, const float *mean, const float *var, float *y,
                           int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(s->n * s->c, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t c = r % s->c;
        float inv = 1.0f / sqrtf(var[c] + s->eps);
        const float *px = x + r * s->inner;
        float *py = y + r * s->inner;
        for (int64_t i = 0; i < s->inner; i++)
            py[i] = scale[c] * ((px[i] - mean[c]) * inv) + bias[c];
    }
}

void ac_softmax_f32__ref(const ac_softmax_shape *s, const float *x, float *y, int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(s->outer * s->inner, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t o = r / s->inner, in = r % s->inner;
        const float *px = x + o * s->len * s->inner + in;
        float *py = y + o * s->len * s->inner + in;
        float mx = -INFINITY;
        for (int64_t i = 0; i < s->len; i++)
            mx = fmaxf(mx, px[i * s->inner]);
        float sum = 0.0f;
        for (int64_t i = 0; i < s->len; i++) {
            float e = expf(px[i * s->inner] - mx);
            py[i * s->inner] = e;
            sum += e;
        }
        for (int64_t i = 0; i < s->len; i++)
            py[i * s->inner] /= sum;
    }
}

/* ---- pooling ------------------------------------------------------------- */

/* Walk the output of one (n, c) plane; `body` sees the window bounds. */
static void pool_plane(const ac_pool_shape *s, bool is_max, const float *x, float *y)
{
    for (int64_t od = 0; od < s->out[0]; od++)
        for (int64_t oh = 0; oh < s->out[1]; oh++)
            for (int64_t ow = 0; ow < s->out[2]; ow++) {
                int64_t o[3] = {od, oh, ow};
                int64_t start[3];
                int64_t padded = 1; /* window size clipped to the padded input */
                for (int d = 0; d < 3; d++) {
                    start[d] = o[d] * s->stride[d] - s->pad_begin[d];
                    int64_t count = 0;
                    for (int64_t k = 0; k < s->kernel[d]; k++) {
                        int64_t i = start[d] + k * s->dilation[d];
                        if (i >= -s->pad_begin[d] && i < s->in[d] + s->pad_end[d])
                            count++;
                    }
                    padded *= count;
                }
                float mx = -INFINITY, sum = 0.0f;
                int64_t valid = 0;
                for (int64_t kd = 0; kd < s->kernel[0]; kd++) {
                    int64_t id = start[0] + kd * s->dilation[0];
                    if (id < 0 || id >= s->in[0])
                        continue;
                    for (int64_t kh = 0; kh < s->kernel[1]; kh++) {
                        int64_t ih = start[1] + kh * s->dilation[1];
                        if (ih < 0 || ih >= s->in[1])
                            continue;
                        for (int64_t kw = 0; kw < s->kernel[2]; kw++) {
                            int64_t iw = start[2] + kw * s->dilation[2];
                            if (iw < 0 || iw >= s->in[2])
                                continue;
                            float v = x[(id * s->in[1] + ih) * s->in[2] + iw];
                            mx = v > mx ? v : mx;
                            sum += v;
                            valid++;
                        }
                    }
                }
                float *py = &y[(od * s->out[1] + oh) * s->out[2] + ow];
                if (is_max)
                    *py = mx;
                else
                    *py = sum / (float)(s->count_include_pad ? padded : valid);
            }
}

static void pool_run(const ac_pool_shape *s, bool is_max, const float *x, float *y, int ith,
                     int nth)
{
    int64_t in_plane = s->in[0] * s->in[1] * s->in[2];
    int64_t out_plane = s->out[0] * s->out[1] * s->out[2];
    int64_t lo, hi;
    ac_ref_range(s->n * s->c, ith, nth, &lo, &hi);
    for (int64_t p = lo; p < hi; p++)
        pool_plane(s, is_max, x + p * in_plane, y + p * out_plane);
}

void ac_maxpool_f32__ref(const ac_pool_shape *s, const float *x, float *y, int ith, int nth)
{
    pool_run(s, true, x, y, ith, nth);
}

void ac_avgpool_f32__ref(const ac_pool_shape *s, const float *x, float *y, int ith, int nth)
{
    pool_run(s, false, x, y, ith, nth);
}

void ac_global_pool_f32__ref(bool is_max, int64_t rows, int64_t len, const float *x, float *y,
                             int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *px = x + r * len;
        if (is_max) {
            float mx = -INFINITY;
            for (int64_t i = 0; i < len; i++)
                mx = px[i] > mx ? px[i] : mx;
            y[r] = mx;
        } else {
            float sum = 0.0f;
            for (int64_t i = 0; i < len; i++)
                sum += px[i];
            y[r] = sum / (float)len;
        }
    }
}

void ac_reduce_mean_f32__ref(const ac_reduce_shape *s, const float *x, float *y, int ith, int nth)
{
    int64_t strides[AC_REF_MAX_DIMS];
    int64_t st = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        strides[d] = st;
        st *= s->dims[d];
    }
    int64_t nout = 1, nred = 1;
    for (int d = 0; d < s->ndim; d++) {
        if (s->reduce[d])
            nred *= s->dims[d];
        else
            nout *= s->dims[d];
    }
    int64_t lo, hi;
    ac_ref_range(nout, ith, nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        /* Offset of the first element of output o: decompose over kept dims. */
        int64_t base = 0, rem = o;
        for (int d = s->ndim - 1; d >= 0; d--) {
            if (s->reduce[d])
                continue;
            base += (rem % s->dims[d]) * strides[d];
            rem /= s->dims[d];
        }
        float sum = 0.0f;
        for (int64_t r = 0; r < nred; r++) {
            int64_t off = base, rr = r;
            for (int d = s->ndim - 1; d >= 0; d--) {
                if (!s->reduce[d])
                    continue;
                off += (rr % s->dims[d]) * strides[d];
                rr /= s->dims[d];
            }
            sum += x[off];
        }
        y[o] = sum / (float)nred;
    }
}

/* ---- transposed convolution ---------------------------------------------- */

/* Gather form: each output element sums the input positions that scatter to it,
 * so outputs are independent and can be split by thread. */
void ac_conv_transpose_f32__ref(const ac_conv_transpose_shape *s, const float *x, const float *w,
                                const float *bias, float *y, int ith, int nth)
{
    int64_t cin_g = s->c_in / s->groups, cout_g = s->c_out / s->groups;
    int64_t in_plane = s->in[0] * s->in[1] * s->in[2];
    int64_t out_plane = s->out[0] * s->out[1] * s->out[2];
    int64_t k_plane = s->kernel[0] * s->kernel[1] * s->kernel[2];
    int64_t lo, hi;
    ac_ref_range(s->n * s->c_out, ith, nth, &lo, &hi);
    for (int64_t p = lo; p < hi; p++) {
        int64_t b = p / s->c_out, oc = p % s->c_out;
        int64_t g = oc / cout_g, ocg = oc % cout_g;
        float *py = y + p * out_plane;
        for (int64_t od = 0; od < s->out[0]; od++)
            for (int64_t oh = 0; oh < s->out[1]; oh++)
                for (int64_t ow = 0; ow < s->out[2]; ow++) {
                    int64_t o[3] = {od, oh, ow};
                    float sum = bias ? bias[oc] : 0.0f;
                    for (int64_t icg = 0; icg < cin_g; icg++) {
                        int64_t ic = g * cin_g + icg;
                        const float *px = x + (b * s->c_in + ic) * in_plane;
                        const float *pw = w + (ic * cout_g + ocg) * k_plane;
                        for (int64_t kd = 0; kd < s->kernel[0]; kd++) {
                            int64_t td = o[0] + s->pad_begin[0] - kd * s->dilation[0];
                            if (td < 0 || td % s->stride[0])
                                continue;
                            int64_t id = td / s->stride[0];
                            if (id >= s->in[0])
                                continue;
                            for (int64_t kh = 0; kh < s->kernel[1]; kh++) {
                                int64_t th = o[1] + s->pad_begin[1] - kh * s->dilation[1];
                                if (th < 0 || th % s->stride[1])
                                    continue;
                                int64_t ih = th / s->stride[1];
                                if (ih >= s->in[1])
                                    continue;
                                for (int64_t kw = 0; kw < s->kernel[2]; kw++) {
                                    int64_t tw = o[2] + s->pad_begin[2] - kw * s->dilation[2];
                                    if (tw < 0 || tw % s->stride[2])
                                        continue;
                                    int64_t iw = tw / s->stride[2];
                                    if (iw >= s->in[2])
                                        continue;
                                    sum += px[(id * s->in[1] + ih) * s->in[2] + iw] *
                                           pw[(kd * s->kernel[1] + kh) * s->kernel[2] + kw];
                                }
                            }
                        }
                    }
                    py[(od * s->out[1] + oh) * s->out[2] + ow] = sum;
                }
    }
}

/* ---- data movement ---------------------------------------------------------- */

void ac_concat__ref(size_t elem_size, int64_t outer, int ninputs, const int64_t *chunk,
                    const void *const *x, void *y, int ith, int nth)
{
    int64_t row = 0;
    for (int i = 0; i < ninputs; i++)
        row += chunk[i];
    int64_t lo, hi;
    ac_ref_range(outer, ith, nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        char *py = (char *)y + (size_t)(o * row) * elem_size;
        for (int i = 0; i < ninputs; i++) {
            size_t bytes = (size_t)chunk[i] * elem_size;
            if (bytes)
                memcpy(py, (const char *)x[i] + (size_t)o * bytes, bytes);
            py += bytes;
        }
    }
}

void ac_split__ref(size_t elem_size, int64_t outer, int noutputs, const int64_t *chunk,
                   const void *x, void *const *y, int ith, int nth)
{
    int64_t row = 0;
    for (int i = 0; i < noutputs; i++)
        row += chunk[i];
    int64_t lo, hi;
    ac_ref_range(outer, ith, nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        const char *px = (const char *)x + (size_t)(o * row) * elem_size;
        for (int i = 0; i < noutputs; i++) {
            size_t bytes = (size_t)chunk[i] * elem_size;
            if (y[i] && bytes)
                memcpy((char *)y[i] + (size_t)o * bytes, px, bytes);
            px += bytes;
        }
    }
}

static void strides_of(int ndim, const int64_t *dims, int64_t *strides)
{
    int64_t st = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        strides[d] = st;
        st *= dims[d];
    }
}

static int64_t numel_of(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= dims[d];
    return n;
}

void ac_slice__ref(size_t elem_size, const ac_slice_shape *s, const void *x, void *y, int ith,
                   int nth)
{
    int64_t ist[AC_REF_MAX_DIMS];
    strides_of(s->ndim, s->in_dims, ist);
    int64_t n = numel_of(s->ndim, s->out_dims);
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        int64_t off = 0, rem = o;
        for (int d = s->ndim - 1; d >= 0; d--) {
            int64_t i = rem % s->out_dims[d];
            rem /= s->out_dims[d];
            off += (s->start[d] + i * s->step[d]) * ist[d];
        }
        memcpy((char *)y + (size_t)o * elem_size, (const char *)x + (size_t)off * elem_size,
               elem_size);
    }
}

void ac_transpose__ref(size_t elem_size, const ac_transpose_shape *s, const void *x, void *y,
                       int ith, int nth)
{
    int64_t ist[AC_REF_MAX_DIMS], odims[AC_REF_MAX_DIMS];
    strides_of(s->ndim, s->in_dims, ist);
    for (int d = 0; d < s->ndim; d++)
        odims[d] = s->in_dims[s->perm[d]];
    int64_t n = numel_of(s->ndim, odims);
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        int64_t off = 0, rem = o;
        for (int d = s->ndim - 1; d >= 0; d--) {
            off += (rem % odims[d]) * ist[s->perm[d]];
            rem /= odims[d];
        }
        memcpy((char *)y + (size_t)o * elem_size, (const char *)x + (size_t)off * elem_size,
               elem_size);
    }
}

/* Source index for padded position i (relative to the input start), or -1
 * for the constant fill. */
static int64_t pad_source(ac_pad_mode mode, int64_t i, int64_t len)
{
    if (i >= 0 && i < len)
        return i;
    if (mode == AC_PAD_CONSTANT)
        return -1;
    if (mode == AC_PAD_EDGE)
        return i < 0 ? 0 : len - 1;
    /* Reflect (without repeating the edge), folding as often as needed. */
    int64_t period = 2 * (len - 1);
    int64_t m = i % period;
    if (m < 0)
        m += period;
    return m < len ? m : period - m;
}

void ac_pad__ref(size_t elem_size, const ac_pad_shape *s, const void *value, const void *x,
                 void *y, int ith, int nth)
{
    int64_t ist[AC_REF_MAX_DIMS];
    strides_of(s->ndim, s->in_dims, ist);
    int64_t n = numel_of(s->ndim, s->out_dims);
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        int64_t off = 0, rem = o;
        bool fill = false;
        for (int d = s->ndim - 1; d >= 0; d--) {
            int64_t i = rem % s->out_dims[d] - s->pad_begin[d];
            rem /= s->out_dims[d];
            int64_t src = pad_source(s->mode, i, s->in_dims[d]);
            if (src < 0)
                fill = true;
            else
                off += src * ist[d];
        }
        memcpy((char *)y + (size_t)o * elem_size,
               fill ? value : (const char *)x + (size_t)off * elem_size, elem_size);
    }
}

int ac_gather__ref(size_t elem_size, int64_t outer, int64_t axis_len, int64_t inner,
                   const void *indices, bool idx32, int64_t nidx, const void *x, void *y, int ith,
                   int nth)
{
    int bad = 0;
    size_t row = (size_t)inner * elem_size;
    int64_t lo, hi;
    ac_ref_range(outer * nidx, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t o = r / nidx, j = r % nidx;
        int64_t k = idx32 ? ((const int32_t *)indices)[j] : ((const int64_t *)indices)[j];
        if (k < 0)
            k += axis_len;
        char *py = (char *)y + (size_t)r * row;
        if (k < 0 || k >= axis_len) {
            memset(py, 0, row);
            bad = 1;
            continue;
        }
        if (row)
            memcpy(py, (const char *)x + (size_t)(o * axis_len + k) * row, row);
    }
    return bad;
}

/* ---- resize ---------------------------------------------------------------- */

float ac_resize_coord(ac_coord_mode mode, int64_t x_out, float scale, int64_t len_in,
                      int64_t len_out)
{
    float x = (float)x_out;
    switch (mode) {
    case AC_COORD_HALF_PIXEL: return (x + 0.5f) / scale - 0.5f;
    case AC_COORD_PYTORCH_HALF_PIXEL: return len_out > 1 ? (x + 0.5f) / scale - 0.5f : 0.0f;
    case AC_COORD_ALIGN_CORNERS:
        /* The resized length is len_in * scale, not rounded (as the ONNX reference). */
        return len_out > 1 ? x * (float)(len_in - 1) / ((float)len_in * scale - 1.0f) : 0.0f;
    case AC_COORD_ASYMMETRIC: return x / scale;
    case AC_COORD_TF_HALF_PIXEL_FOR_NN: return (x + 0.5f) / scale;
    }
    return x / scale;
}

int64_t ac_resize_nearest_index(ac_nearest_mode mode, float x_in, int64_t len_in)
{
    float r;
    switch (mode) {
    case AC_NEAREST_ROUND_PREFER_FLOOR:
        r = (x_in == floorf(x_in) + 0.5f) ? floorf(x_in) : roundf(x_in);
        break;
    case AC_NEAREST_ROUND_PREFER_CEIL: r = (x_in == floorf(x_in) + 0.5f) ? ceilf(x_in) : roundf(x_in); break;
    case AC_NEAREST_FLOOR: r = floorf(x_in); break;
    case AC_NEAREST_CEIL: r = ceilf(x_in); break;
    default: r = floorf(x_in); break;
    }
    if (!(r > 0.0f)) /* also catches NaN */
        return 0;
    if (r >= (float)(len_in - 1))
        return len_in - 1;
    return (int64_t)r;
}

void ac_resize_nearest__ref(size_t elem_size, const ac_resize_nearest_shape *s, const void *x,
                            void *y, int ith, int nth)
{
    int64_t ist[AC_REF_MAX_DIMS];
    strides_of(s->ndim, s->in_dims, ist);
    int64_t n = numel_of(s->ndim, s->out_dims);
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        int64_t off = 0, rem = o;
        for (int d = s->ndim - 1; d >= 0; d--) {
            off += s->src[d][rem % s->out_dims[d]] * ist[d];
            rem /= s->out_dims[d];
        }
        memcpy((char *)y + (size_t)o * elem_size, (const char *)x + (size_t)off * elem_size,
               elem_size);
    }
}

void ac_resize_linear_taps(float x_in, int64_t len_in, int64_t *i0, int64_t *i1, float *l1)
{
    if (!(x_in > 0.0f)) /* also NaN */
        x_in = 0.0f;
    if (x_in > (float)(len_in - 1))
        x_in = (float)(len_in - 1);
    int64_t f = (int64_t)floorf(x_in);
    *i0 = f;
    *i1 = f + 1 < len_in ? f + 1 : len_in - 1;
    *l1 = x_in - (float)f;
}

void ac_resize_linear_f32__ref(const ac_resize_linear_shape *s, const float *x, float *y, int ith,
                               int nth)
{
    int64_t lo, hi;
    ac_ref_range(s->outer * s->h_out, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t o = r / s->h_out, oh = r % s->h_out;
        const float *p0 = x + (o * s->h_in + s->h0[oh]) * s->w_in;
        const float *p1 = x + (o * s->h_in + s->h1[oh]) * s->w_in;
        float lh1 = s->hl[oh], lh0 = 1.0f - lh1;
        float *py = y + r * s->w_out;
        for (int64_t ow = 0; ow < s->w_out; ow++) {
            float lw1 = s->wl[ow], lw0 = 1.0f - lw1;
            float top = p0[s->w0[ow]] * lw0 + p0[s->w1[ow]] * lw1;
            float bot = p1[s->w0[ow]] * lw0 + p1[s->w1[ow]] * lw1;
            py[ow] = top * lh0 + bot * lh1;
        }
    }
}
