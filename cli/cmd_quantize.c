/* autocalib quantize: calibrate, quantize for BM1684, score, write artefacts.
 * Flags keep the original tool's names; dash spellings work too. */
#include <stdio.h>
#include <string.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_preproc.h"
#include "ac_cluster.h"
#include "ac_farm_job.h"
#include "ac_quantize.h"

/* The search on a farm: a running broker (--broker), or the embedded cluster. */
int ac_cli_run_search(ac_farm_job_options *fo, const char *broker, int workers, const char *curve_key,
                      const char *server_key, ac_quantize_result *res, ac_err *err)
{
    ac_cluster *cluster = NULL;
    const char *endpoint = broker;
    if (!broker) {
        /* Its broker and workers log every task (stderr): --calib_debug, not
         * --verbose, which only adds the per-layer plan. */
        ac_cluster_config cc = {.workers = workers, .threads = fo->q.threads, .verbose = fo->calib_debug};
        cluster = ac_cluster_new(&cc, err);
        if (!cluster)
            return -1;
        endpoint = ac_cluster_endpoint(cluster);
        fo->workers = ac_cluster_workers(cluster);
        fo->local_data = true;
        if (!fo->q.quiet)
            printf("embedded cluster: broker %s, %d local worker(s) x %d thread(s)\n", endpoint,
                   ac_cluster_workers(cluster), ac_cluster_threads_per_worker(cluster));
    }
    /* CURVE protects a farm's TCP endpoint; the embedded cluster is inproc
     * (there --curve_key is the remote test server's own key). */
    ac_farm_client_opts co = {.endpoint = endpoint, .cert_path = broker ? curve_key : NULL,
                              .server_pub = broker ? server_key : NULL};
    ac_farm_client *client = ac_farm_client_new(&co, err);
    int rc = client ? ac_farm_job_run(fo, client, res, err) : -1;
    ac_farm_client_destroy(&client);
    ac_cluster_destroy(&cluster);
    return rc;
}

int ac_cmd_quantize(int argc, char **argv)
{
    ac_farm_job_options fo;
    ac_farm_job_options_init(&fo);
    ac_quantize_options o;
    ac_quantize_options_init(&o);
    const char *broker = NULL, *curve_key = NULL, *server_key = NULL, *test_source = NULL;
    int workers = 0;
    bool no_search = false;
    const char *th_method = "KL", *template_name = NULL, *user_pp = NULL;
    bool no_kl_tune = false, print_pp = false, help = false;
    ac_arg_spec specs[] = {
        {"model", NULL, AC_ARG_STRING, &o.model, "the fp32 model (ONNX, a Darknet .cfg or Caffe .prototxt with --weights, PyTorch .pt or module.py:Class)"},
        {"weights", NULL, AC_ARG_STRING, &o.weights, "the weights of two-file formats (Darknet: --model X.cfg --weights X.weights; Caffe: --model X.prototxt --weights X.caffemodel; a state dict for module.py:Class)"},
        {"calib_image_source", NULL, AC_ARG_STRING, &o.calib_image_source, "calibration images: a folder or an ImageList file"},
        {"calib_lmdb_path", NULL, AC_ARG_STRING, &o.calib_lmdb_path, "calibration LMDB folder (preprocessed tensors)"},
        {"calib_idx_images", NULL, AC_ARG_STRING, &o.calib_idx_images, "calibration idx image file (MNIST style, .gz ok)"},
        {"calib_idx_labels", NULL, AC_ARG_STRING, &o.calib_idx_labels, "its idx label file"},
        {"test_image_source", NULL, AC_ARG_STRING, &o.test_image_source, "test images: a folder or an ImageList file (labels optional)"},
        {"test_lmdb_path", NULL, AC_ARG_STRING, &o.test_lmdb_path, "test LMDB folder (labels from data.label)"},
        {"test_idx_images", NULL, AC_ARG_STRING, &o.test_idx_images, "test idx image file"},
        {"test_idx_labels", NULL, AC_ARG_STRING, &o.test_idx_labels, "its idx label file"},
        {"test_source", NULL, AC_ARG_STRING, &test_source,
         "'remote': a Python client streams the test data and reports each candidate's score (docs/remote.md)"},
        {"listen", NULL, AC_ARG_STRING, &fo.remote_listen, "--test_source remote: where the client connects, e.g. tcp://*:5556"},
        {"listen_curve_dir", NULL, AC_ARG_STRING, &fo.remote_curve_dir,
         "--test_source remote over TCP with CURVE: the admitted clients' public certificates (the server's is --curve_key)"},
        {"remote_linger", NULL, AC_ARG_FLOAT, &fo.remote_linger,
         "--test_source remote: seconds to keep serving the result after the search (default 30)"},
        {"test_yolo_labels", NULL, AC_ARG_STRING, &o.test_yolo_labels,
         "folder of YOLO .txt box labels (one per test image): --task detect scores against them"},
        {"data_preproccess_str", "data_preprocess_str", AC_ARG_STRING, &user_pp,
         "preprocessing of images, e.g. 'resize_h=224,resize_w=224;mean_value=128:128:128,scale=0.0078125,bgr2rgb=True'"},
        {"image_data_preproccess", "image_data_preprocess", AC_ARG_STRING, &template_name,
         "a named preprocessing template (user_defined = use --data_preproccess_str)"},
        {"print_all_image_data_preproccess_detail", "print_all_image_data_preprocess_detail", AC_ARG_FLAG, &print_pp,
         "print every template and preprocessing op, then exit"},
        {"input_data_name", NULL, AC_ARG_STRING, &o.input_data_name, "the model input the data feeds (default: the first)"},
        {"input_data_shape", NULL, AC_ARG_STRING, &o.input_data_shape, "input shape; dim 0 is the batch run at once, e.g. '(16,3,224,224)'"},
        {"output_data_name", NULL, AC_ARG_STRING, &o.output_data_name, "the output that is scored (default: the first)"},
        {"calib_iterations", NULL, AC_ARG_INT, &o.calib_iterations, "calibration batches (0 = all)"},
        {"test_iterations", NULL, AC_ARG_INT, &o.test_iterations, "test batches (0 = all)"},
        {"accept_int8_decay", NULL, AC_ARG_FLOAT, &o.accept_int8_decay, "allowed score loss (default 0.005 = half a point)"},
        {"fp32_score", NULL, AC_ARG_FLOAT, &o.fp32_score, "the known fp32 score (0 = compute it)"},
        {"task", NULL, AC_ARG_STRING, &o.task, "classify | detect | similarity (default: classify with labels, else similarity)"},
        {"detect_decoder", NULL, AC_ARG_STRING, &o.detect_decoder,
         "--task detect: ssd (default), ultraface, ultraface_raw, yolo_fastest, yunet or blazeface"},
        {"output_dir", NULL, AC_ARG_STRING, &o.output_dir, "where the artefacts go (default ./autocalib_out)"},
        {"th_method", NULL, AC_ARG_STRING, &th_method, "KL (default), MAX, PERCENTILE9999, MSE, ACIQ_GAUSS, ACIQ_LAPLACE"},
        {"no_kl_tune", NULL, AC_ARG_FLAG, &no_kl_tune, "skip the upward KL tuning step"},
        {"per_channel", NULL, AC_ARG_FLAG, &o.per_channel, "per-output-channel conv/FC shifts"},
        {"accuracy_opt", NULL, AC_ARG_FLAG, &o.accuracy_opt, "keep depthwise convs in fp32"},
        {"first_conv_fp32", NULL, AC_ARG_FLAG, &o.first_conv_fp32, "keep the first conv in fp32"},
        {"fp32_layers", NULL, AC_ARG_STRING, &o.fp32_layers, "layers kept in fp32: name1,name2 (node or output names)"},
        {"threads", NULL, AC_ARG_INT, &o.threads, "OpenMP threads (default: all cores)"},
        {"quiet", NULL, AC_ARG_FLAG, &o.quiet, "print only errors and the final line (no progress, no summary)"},
        {"verbose", NULL, AC_ARG_FLAG, &o.verbose, "also print the chosen per-layer plan"},
        {"no_search", NULL, AC_ARG_FLAG, &no_search,
         "evaluate exactly the given strategy in this process (no search, no farm)"},
        {"auto_calib", NULL, AC_ARG_FLAG, &fo.auto_calib,
         "auto mode: when fast mode misses the budget, keep the fewest most sensitive layers in fp32"},
        {"baseline_first", NULL, AC_ARG_FLAG, &fo.baseline_first,
         "evaluate plain int8 in full before screening the options (default in remote test mode; otherwise "
         "the screen decides which equally cheap plan is evaluated first)"},
        {"calib_debug", NULL, AC_ARG_FLAG, &fo.calib_debug,
         "log every search step (and the embedded cluster's broker and workers, on stderr)"},
        {"max_search_seconds", NULL, AC_ARG_FLOAT, &fo.max_search_seconds,
         "stop searching after this long and keep the best plan found (0 = no limit)"},
        {"resume", NULL, AC_ARG_FLAG, &fo.resume, "continue a killed search from the journal in --output_dir"},
        {"broker", NULL, AC_ARG_STRING, &broker, "a running farm's broker, e.g. tcp://host:5555 (default: an embedded cluster)"},
        {"workers", NULL, AC_ARG_INT, &workers, "local workers of the embedded cluster (default 1; cores are split)"},
        {"shard_batches", NULL, AC_ARG_INT, &fo.shard_batches, "batches per task shard (default 8)"},
        {"curve_key", "curve-key", AC_ARG_STRING, &curve_key, "CURVE: this coordinator's secret certificate"},
        {"server_key", "server-key", AC_ARG_STRING, &server_key, "CURVE: the broker's public certificate"},
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, nspecs, NULL, 0, NULL, &help, &err)) {
        fprintf(stderr, "autocalib quantize: %s\n", err.msg);
        return 2;
    }
    if (help) {
        ac_args_print_help("usage: autocalib quantize --model M (--calib_image_source S | --calib_lmdb_path D | "
                           "--calib_idx_images F) (--test_...) [options]",
                           specs, nspecs);
        return 0;
    }
    if (print_pp) {
        ac_preproc_print_all(stdout);
        return 0;
    }
    if (ac_th_method_parse(th_method, &o.th_method, &err)) {
        fprintf(stderr, "autocalib quantize: --th_method: %s\n", err.msg);
        return 2;
    }
    o.kl_tune = !no_kl_tune;
    if (o.calib_iterations < 0 || o.test_iterations < 0 || o.threads < 0 || o.fp32_score < 0) {
        fprintf(stderr, "autocalib quantize: --calib_iterations, --test_iterations, --threads and --fp32_score "
                        "must be >= 0\n");
        return 2;
    }
    if (ac_preproc_resolve(template_name, user_pp, &o.preprocess, &err)) {
        fprintf(stderr, "autocalib quantize: --image_data_preproccess: %s\n", err.msg);
        return 2;
    }
    if (workers < 0 || fo.shard_batches < 0 || fo.max_search_seconds < 0) {
        fprintf(stderr, "autocalib quantize: --workers, --shard_batches and --max_search_seconds must be >= 0\n");
        return 2;
    }
    if (test_source && strcmp(test_source, "remote")) {
        fprintf(stderr, "autocalib quantize: --test_source '%s': the only named source is 'remote' (local test data "
                        "is given with --test_image_source, --test_lmdb_path or --test_idx_images)\n", test_source);
        return 2;
    }
    bool remote = test_source != NULL;
    if (remote != (fo.remote_listen != NULL) || (fo.remote_curve_dir && !remote) || fo.remote_linger < 0) {
        fprintf(stderr, "autocalib quantize: --test_source remote and --listen EP go together (with "
                        "--listen_curve_dir and --remote_linger >= 0 only then)\n");
        return 2;
    }
    if (remote && no_search) {
        fprintf(stderr, "autocalib quantize: --no_search runs in this process on local test data; remote test mode "
                        "always goes through the search\n");
        return 2;
    }
    if (fo.remote_curve_dir)
        fo.remote_curve_cert = curve_key;
    ac_quantize_result res;
    if (no_search) {
        if (ac_quantize_run(&o, &res, &err))
            return ac_cli_fail("quantize", err.msg);
    } else {
        fo.q = o;
        if (ac_cli_run_search(&fo, broker, workers, curve_key, server_key, &res, &err))
            return ac_cli_fail("quantize", err.msg);
    }
    printf("%s: fp32 %.4f, int8 %.4f (loss %.4f, budget %.4f: %s), %d fp32 layers, %.1fs; artefacts in %s\n",
           res.task, res.fp32_score, res.int8_score, res.fp32_score - res.int8_score, o.accept_int8_decay,
           res.met_budget ? "met" : "NOT met", res.n_fp32_layers, res.elapsed_s, res.output_dir);
    return 0;
}
