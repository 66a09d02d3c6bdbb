/* bench_decode: decode + preprocess throughput of ac_dataset on an image
 * folder or list, for the given thread counts. bench/bench_decode.py runs it
 * next to Pillow/OpenCV doing the same pipeline and prints the ratios.
 *
 *   bench_decode SOURCE [PREPROCESS] [THREADS...]
 * Prints one line per thread count:
 *   autocalib threads=N images=M seconds=S images_per_s=R checksum=C */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_dataset.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_decode SOURCE [PREPROCESS] [THREADS...]\n");
        return 2;
    }
    const char *pp = argc > 2 ? argv[2]
                              : "resize_h=256,resize_w=256;mean_value=103.94:116.78:123.68,scale=1.0,bgr2rgb=True;"
                                "crop_h=224,crop_w=224";
    int nthreads[8] = {1, 2}, nt = 2;
    if (argc > 3)
        for (nt = 0; nt < 8 && 3 + nt < argc; nt++)
            nthreads[nt] = atoi(argv[3 + nt]);
    for (int t = 0; t < nt; t++) {
        ac_err err = {0};
        ac_dataset_opts o = {pp, AC_LAYOUT_NCHW, 3, 0, 0, NULL, nthreads[t]};
        ac_dataset *ds = ac_dataset_open(argv[1], &o, &err);
        if (!ds) {
            fprintf(stderr, "bench_decode: %s\n", err.msg);
            return 1;
        }
        int64_t n = ac_dataset_count(ds), chunk = 64;
        size_t per = ac_dataset_sample_elems(ds, 0);
        float *buf = malloc(sizeof(float) * per * (size_t)chunk);
        double checksum = 0, t0 = omp_get_wtime();
        for (int64_t i = 0; i < n; i += chunk) {
            int64_t k = n - i < chunk ? n - i : chunk;
            if (ac_dataset_read(ds, 0, i, k, buf, &err)) {
                fprintf(stderr, "bench_decode: %s\n", err.msg);
                return 1;
            }
            checksum += buf[0];
        }
        double s = omp_get_wtime() - t0;
        printf("autocalib threads=%d images=%lld seconds=%.3f images_per_s=%.1f checksum=%.3f\n", nthreads[t],
               (long long)n, s, n / s, checksum);
        fflush(stdout);
        free(buf);
        ac_dataset_destroy(&ds);
    }
    return 0;
}
