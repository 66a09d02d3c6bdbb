#include "ac_job.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ac_model.h"
#include "ac_runner.h"

double ac_job_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ac_job_say(const ac_quantize_options *o, double t0, const char *fmt, ...)
{
    if (o->quiet)
        return;
    FILE *f = o->log ? o->log : stdout;
    fprintf(f, "[%7.2fs] ", ac_job_now() - t0);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

ac_progress *ac_job_progress(const ac_quantize_options *o, double t0, const char *what, int64_t total,
                             const char *unit)
{
    if (o->quiet)
        return NULL;
    return ac_progress_new(o->log ? o->log : stdout, AC_PROGRESS_AUTO, t0, what, total, unit);
}

static int find_io(const ac_graph *g, int n, const int *idx, const char *name, const char *what, ac_err *err)
{
    if (!name || !*name)
        return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(g->tensors[idx[i]].name, name))
            return i;
    return -ac_err_set(err, AC_E_INVALID, "--%s_data_name '%s': the model has no such %s", what, name, what);
}

int ac_job_load_model(const ac_quantize_options *o, ac_job_model *m, ac_err *err)
{
    memset(m, 0, sizeof *m);
    ac_model_options mo = {.weights = o->weights, .input_shapes = o->input_data_shape};
    m->g = ac_model_load(o->model, &mo, NULL, err);
    if (!m->g)
        return -1;
    m->input = find_io(m->g, m->g->ninputs, m->g->inputs, o->input_data_name, "input", err);
    m->out_index = find_io(m->g, m->g->noutputs, m->g->outputs, o->output_data_name, "output", err);
    if (m->input < 0 || m->out_index < 0)
        return -1;
    if (m->g->ninputs != 1)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: models with %d inputs are not supported yet (one data input)",
                          o->model, m->g->ninputs);
    const ac_tensor *in = &m->g->tensors[m->g->inputs[m->input]];
    if (in->dtype != AC_DT_F32 || in->ndim < 2)
        return ac_err_set(err, AC_E_UNSUPPORTED, "input '%s': need a float32 tensor with a batch dim", in->name);
    m->batch = (int)in->dims[0];
    return 0;
}

/* Same nodes and tensors (names, dtypes, ranks) in the same order. */
static bool same_structure(const ac_graph *a, const ac_graph *b)
{
    if (a->nnodes != b->nnodes || a->ntensors != b->ntensors)
        return false;
    for (int t = 0; t < a->ntensors; t++) {
        const ac_tensor *x = &a->tensors[t], *y = &b->tensors[t];
        if (strcmp(x->name, y->name) || x->dtype != y->dtype || x->ndim != y->ndim || x->producer != y->producer)
            return false;
    }
    return true;
}

ac_graph *ac_job_load_model_batch(const ac_quantize_options *o, const ac_job_model *m, int batch, ac_err *err)
{
    const ac_tensor *in = &m->g->tensors[m->g->inputs[m->input]];
    char shape[256];
    int n = snprintf(shape, sizeof shape, "(%d", batch);
    for (int d = 1; d < in->ndim && n < (int)sizeof shape; d++)
        n += snprintf(shape + n, sizeof shape - (size_t)n, ",%lld", (long long)in->dims[d]);
    if (n + 2 > (int)sizeof shape) {
        ac_err_set(err, AC_E_INVALID, "input '%s': shape too long to restate", in->name);
        return NULL;
    }
    strcat(shape, ")");
    ac_model_options mo = {.weights = o->weights, .input_shapes = shape};
    ac_graph *g = ac_model_load(o->model, &mo, NULL, err);
    if (g && !same_structure(m->g, g)) {
        ac_err_set(err, AC_E_UNSUPPORTED, "%s at batch %d is another graph", o->model, batch);
        ac_graph_destroy(&g);
    }
    return g;
}

ac_dataset *ac_job_open_data(const ac_quantize_options *o, const ac_job_model *m, const char *images,
                             const char *lmdb, const char *idx_images, const char *idx_labels,
                             const char *yolo_labels, const char *what, ac_err *err)
{
    /* The layout the model input asks for (shared with the workers: it also
     * decides the dataset's content hash). */
    ac_dataset_opts d = ac_runner_data_opts(m->g, m->input, o->preprocess, o->threads);
    /* Our LMDBs hold tensors that were preprocessed when they were written. */
    if (lmdb)
        d.preprocess = NULL;
    if (yolo_labels && !images) {
        ac_err_set(err, AC_E_INVALID, "--%s_yolo_labels: YOLO labels go with --%s_image_source (an image folder or list)",
                   what, what);
        return NULL;
    }
    d.yolo_labels = yolo_labels;
    int given = (images != NULL) + (lmdb != NULL) + (idx_images != NULL);
    if (given != 1) {
        ac_err_set(err, AC_E_INVALID,
                   given ? "give one %s source (--%s_image_source, --%s_lmdb_path or --%s_idx_images), not several"
                         : "no %s data: give --%s_image_source, --%s_lmdb_path or --%s_idx_images",
                   what, what, what, what);
        return NULL;
    }
    ac_dataset *ds = idx_images ? ac_dataset_open_idx(idx_images, idx_labels, &d, err)
                                : ac_dataset_open(images ? images : lmdb, &d, err);
    if (ds && ac_runner_check_data(m->g, m->input, ds, what, err))
        ac_dataset_destroy(&ds);
    return ds;
}

int ac_job_metric_options(const ac_quantize_options *o, const ac_job_model *m, const ac_dataset *test,
                          ac_metric_options *mo, ac_err *err)
{
    const ac_labels *labels = ac_dataset_labels(test);
    bool classes = labels && ac_labels_kind(labels) == AC_LABEL_CLASS;
    bool boxes = labels && ac_labels_kind(labels) == AC_LABEL_BOXES;
    const char *task = o->task && *o->task ? o->task : classes ? "classify" : boxes ? "detect" : "similarity";
    if (!strcmp(task, "classify")) {
        if (!classes)
            return ac_err_set(err, AC_E_INVALID, "--task classify: the test data %s has no class labels",
                              ac_dataset_source_name(test));
        ac_metric_options_init(mo, AC_METRIC_CLASSIFY);
    } else if (!strcmp(task, "similarity")) {
        ac_metric_options_init(mo, AC_METRIC_SIMILARITY);
        const ac_tensor *out = &m->g->tensors[m->g->outputs[m->out_index]];
        mo->classifier = out->ndim == 2 && out->dims[1] > 1;
    } else if (!strcmp(task, "detect")) {
        /* Against the test data's boxes when it has them (the runner passes
         * them), else against the fp32 model's own detections. */
        if (classes)
            return ac_err_set(err, AC_E_INVALID, "--task detect: the test data %s has class labels, not boxes",
                              ac_dataset_source_name(test));
        ac_metric_options_init(mo, AC_METRIC_DETECT);
        if (ac_detect_config_preset(&mo->detect, o->detect_decoder, err))
            return ac_err_prefix(err, "--detect_decoder: ");
    } else {
        return ac_err_set(err, AC_E_INVALID, "--task '%s': must be classify, detect or similarity", task);
    }
    mo->output = m->out_index;
    return 0;
}

int ac_job_split_names(const char *list, char **buf, const char **names, int max, int *n, const char *option,
                       ac_err *err)
{
    *n = 0;
    *buf = NULL;
    if (!list || !*list)
        return 0;
    *buf = strdup(list);
    if (!*buf)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    char *save = NULL;
    for (char *tok = strtok_r(*buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (*n >= max)
            return ac_err_set(err, AC_E_INVALID, "%s: more than %d names", option, max);
        names[(*n)++] = tok;
    }
    return 0;
}
