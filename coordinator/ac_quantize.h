/* ac_quantize: one quantization job end to end, in one process: calibrate
 * the fp32 model on the calibration set, build the BM1684 int8 plan for one
 * strategy, score fp32 and int8 on the test set, and write the artefacts
 * (calibration_table, qtable, the int8 model, report.json) to the output
 * folder atomically. The farm (issue 5) distributes the same steps. */
#ifndef AC_QUANTIZE_H
#define AC_QUANTIZE_H

#include <stdbool.h>
#include <stdio.h>

#include "ac_err.h"
#include "ac_threshold.h"

typedef struct {
    const char *model, *weights;
    /* data: an image folder / ImageList, an LMDB folder, or idx files */
    const char *calib_image_source, *calib_lmdb_path, *calib_idx_images, *calib_idx_labels;
    const char *test_image_source, *test_lmdb_path, *test_idx_images, *test_idx_labels;
    const char *test_yolo_labels; /* folder of YOLO .txt box labels for the test images */
    const char *preprocess;       /* resolved preprocessing string (may be NULL) */
    const char *input_data_name;  /* the model input the data feeds (default: the first) */
    const char *input_data_shape; /* --input_data_shape; dim 0 is the batch */
    const char *output_data_name; /* the output scored (default: the first) */
    int calib_iterations, test_iterations; /* batches; 0 = all */
    double accept_int8_decay;     /* allowed score loss, absolute (0.005 = half a point) */
    double fp32_score;            /* 0 = compute it */
    const char *task;             /* classify | detect | similarity | NULL (auto) */
    const char *detect_decoder;   /* detect: ssd | ultraface | ultraface_raw | yolo_fastest (NULL: ssd) */
    const char *output_dir;
    ac_th_method th_method;
    bool kl_tune;                 /* the upward KL tuning step */
    bool per_channel, accuracy_opt, first_conv_fp32;
    const char *fp32_layers;      /* comma-separated layer names */
    int threads;
    bool quiet, verbose;
    FILE *log;                    /* progress lines (NULL: stdout) */
} ac_quantize_options;

typedef struct {
    double fp32_score, int8_score;
    bool met_budget;
    char task[16];
    int n_fp32_layers;
    double elapsed_s;
    char output_dir[4096];
} ac_quantize_result;

void ac_quantize_options_init(ac_quantize_options *o);
int ac_quantize_run(const ac_quantize_options *o, ac_quantize_result *res, ac_err *err);

#endif
