/* darknet_ref: the fp32 reference for the Darknet importer, computed by
 * Debian's darknet itself (package darknet: /usr/lib/darknet/libdarknet.so,
 * the library its `darknet` command is built from). The CLI prints only class
 * names and rounded percentages, so this small program drives the same
 * library calls `darknet detector test` makes and writes what the comparison
 * needs (tests/python/test_darknet.py):
 *
 *   darknet_ref CFG WEIGHTS (IMAGE | INPUT.npy) OUTDIR [THRESH]
 *
 * IMAGE: darknet's load_image_color + letterbox_image to the network size,
 * exactly as `detector test` does; the letterboxed pixels are written as
 * OUTDIR/input.npy ([1, 3, H, W] float32, RGB 0..1) so autocalib can run on
 * the very same input. INPUT.npy: that tensor given directly.
 * Then network_predict, and for every yolo/region layer k the raw input of
 * the layer (the output of the layer before it) as OUTDIR/head_<k>.npy, and
 * the detections of get_network_boxes + do_nms_sort(0.45) with probability
 * > THRESH (default 0.25) in network-input coordinates, one per line on
 * stdout: "det CLASS PROB X Y W H" (centre and size, relative to the input). */
#include <darknet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_npy(const char *path, const float *data, int c, int h, int w)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, %d, %d, %d), }", c, h, w);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    unsigned short hlen = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hlen, 2, 1, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    size_t cnt = (size_t)c * h * w;
    int ok = fwrite(data, sizeof(float), cnt, f) == cnt;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A [1, c, h, w] little-endian float32 .npy as np.save writes it. */
static float *read_npy(const char *path, int c, int h, int w)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char magic[10];
    float *x = NULL;
    if (fread(magic, 1, 10, f) == 10 && !memcmp(magic, "\x93NUMPY\x01", 7)) {
        int hlen = magic[8] | magic[9] << 8;
        char hdr[1024] = {0}, want[96];
        snprintf(want, sizeof want, "'shape': (1, %d, %d, %d)", c, h, w);
        size_t cnt = (size_t)c * h * w;
        if (hlen < (int)sizeof hdr && fread(hdr, 1, (size_t)hlen, f) == (size_t)hlen && strstr(hdr, "'<f4'") &&
            strstr(hdr, "'fortran_order': False") && strstr(hdr, want) && (x = malloc(cnt * sizeof *x)) &&
            fread(x, sizeof *x, cnt, f) != cnt) {
            free(x);
            x = NULL;
        }
    }
    fclose(f);
    return x;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: darknet_ref CFG WEIGHTS (IMAGE | INPUT.npy) OUTDIR [THRESH]\n");
        return 2;
    }
    float thresh = argc > 5 ? (float)atof(argv[5]) : .25f;
    network *net = load_network(argv[1], argv[2], 0);
    set_batch_network(net, 1);
    const char *in = argv[3];
    size_t len = strlen(in);
    char path[4096];
    float *x;
    image sized = {0};
    if (len > 4 && !strcmp(in + len - 4, ".npy")) {
        x = read_npy(in, net->c, net->h, net->w);
        if (!x) {
            fprintf(stderr, "darknet_ref: %s is not a [1,%d,%d,%d] float32 .npy\n", in, net->c, net->h, net->w);
            return 1;
        }
    } else {
        image im = load_image_color((char *)in, 0, 0);
        sized = letterbox_image(im, net->w, net->h);
        free_image(im);
        x = sized.data;
        snprintf(path, sizeof path, "%s/input.npy", argv[4]);
        if (write_npy(path, x, net->c, net->h, net->w)) {
            fprintf(stderr, "darknet_ref: cannot write %s\n", path);
            return 1;
        }
    }
    network_predict(net, x);
    int k = 0;
    for (int i = 1; i < net->n; i++) {
        layer l = net->layers[i];
        if (l.type != YOLO && l.type != REGION)
            continue;
        layer p = net->layers[i - 1];
        snprintf(path, sizeof path, "%s/head_%d.npy", argv[4], k++);
        if (write_npy(path, p.output, p.out_c, p.out_h, p.out_w)) {
            fprintf(stderr, "darknet_ref: cannot write %s\n", path);
            return 1;
        }
    }
    int nboxes = 0;
    layer last = net->layers[net->n - 1];
    detection *dets = get_network_boxes(net, net->w, net->h, thresh, .5f, 0, 1, &nboxes);
    do_nms_sort(dets, nboxes, last.classes, .45f);
    for (int i = 0; i < nboxes; i++)
        for (int j = 0; j < last.classes; j++)
            if (dets[i].prob[j] > thresh)
                printf("det %d %.9g %.9g %.9g %.9g %.9g\n", j, dets[i].prob[j], dets[i].bbox.x, dets[i].bbox.y,
                       dets[i].bbox.w, dets[i].bbox.h);
    free_detections(dets, nboxes);
    if (sized.data)
        free_image(sized);
    else
        free(x);
    free_network(net);
    return 0;
}
