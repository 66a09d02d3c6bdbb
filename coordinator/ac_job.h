/* ac_job: what every quantization job does the same way, whether it runs one
 * strategy in process (ac_quantize) or searches on a farm (ac_farm_job):
 * timestamped progress lines and bars, loading the model and finding its
 * data input and scored output, opening a data source, the score (task ->
 * metric options), and the --fp32_layers list. */
#ifndef AC_JOB_H
#define AC_JOB_H

#include "ac_dataset.h"
#include "ac_graph.h"
#include "ac_metric.h"
#include "ac_progress.h"
#include "ac_quantize.h"

double ac_job_now(void);

/* "[  12.34s] message" on o->log (stdout), unless o->quiet. */
void ac_job_say(const ac_quantize_options *o, double t0, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A progress display of a long phase on o->log (stdout): a bar on a
 * terminal, timestamped lines elsewhere (coordinator/ac_progress.h); NULL,
 * which shows nothing, when o->quiet. */
ac_progress *ac_job_progress(const ac_quantize_options *o, double t0, const char *what, int64_t total,
                             const char *unit);

typedef struct {
    ac_graph *g;
    int input;      /* index into g->inputs: the data input */
    int out_index;  /* index into g->outputs: the scored output */
    int batch;      /* dim 0 of the data input */
} ac_job_model;

/* Loads o->model with o->input_data_shape; one float32 data input with a batch dim. */
int ac_job_load_model(const ac_quantize_options *o, ac_job_model *m, ac_err *err);

/* m's model loaded again with another batch (dim 0 of the data input), for
 * work that reads every tensor of a run and so wants small batches. NULL
 * (err set) when the model does not load at that batch or its graph is not
 * m->g's tensor for tensor (the caller then keeps m->g). */
ac_graph *ac_job_load_model_batch(const ac_quantize_options *o, const ac_job_model *m, int batch, ac_err *err);

/* Opens the one source given (images, an LMDB or idx files) with the sample
 * layout the model input asks for, and checks the sample size. what: "calib"
 * or "test", for messages. */
ac_dataset *ac_job_open_data(const ac_quantize_options *o, const ac_job_model *m, const char *images,
                             const char *lmdb, const char *idx_images, const char *idx_labels,
                             const char *yolo_labels, const char *what,
                             ac_err *err);

/* The score of --task (default: classify with class labels, else similarity). */
int ac_job_metric_options(const ac_quantize_options *o, const ac_job_model *m, const ac_dataset *test,
                          ac_metric_options *mo, ac_err *err);

/* Splits "a, b,c" into names[] (pointing into *buf, malloc'ed; free it). */
int ac_job_split_names(const char *list, char **buf, const char **names, int max, int *n, const char *option,
                       ac_err *err);

#endif
