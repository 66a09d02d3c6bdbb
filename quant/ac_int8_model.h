/* ac_int8_model: the int8 model file (docs/int8-model-format.md): one msgpack
 * document holding the fp32 graph (generic IR, whatever format it was
 * imported from), the quantization options, the shared calibration table and,
 * per node, the mode and the integer parameters of the BM1684 plan.
 *
 * Writing stores the plan as built. Loading rebuilds the graph from the
 * stored IR (toposort + shape inference), rebuilds the plan with
 * ac_plan_build from the stored table and options, and checks that every
 * stored per-node mode and integer parameter equals the rebuilt one bit for
 * bit: the file is then known to describe exactly what the executor runs.
 * Every malformed file is an error naming the field; nothing is allocated
 * from a declared length before the bytes are known to exist. */
#ifndef AC_INT8_MODEL_H
#define AC_INT8_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_plan.h"

#define AC_INT8_MODEL_FORMAT "autocalib-int8"
#define AC_INT8_MODEL_VERSION 1

/* Written into the file's "producer" field. */
#define AC_INT8_MODEL_PRODUCER "autocalib 0.1"

/* Serialises the plan (its graph, options and shared table) to a malloc'ed buffer. */
int ac_int8_model_encode(const ac_plan *plan, uint8_t **buf, size_t *len, ac_err *err);
/* Writes the file atomically (a temporary name in the same folder, then rename). */
int ac_int8_model_write(const char *path, const ac_plan *plan, ac_err *err);

/* True when the file starts like an int8 model (its first key is "format" with
 * value "autocalib-int8"); a cheap test for the CLI, not a validation. */
bool ac_int8_model_detect(const char *path);
bool ac_int8_model_detect_bytes(const void *buf, size_t len);

typedef struct ac_int8_model ac_int8_model;

/* Parses, rebuilds and verifies. `name` prefixes error messages (the path). */
ac_int8_model *ac_int8_model_parse(const void *buf, size_t len, const char *name, ac_err *err);
ac_int8_model *ac_int8_model_load(const char *path, ac_err *err);
void ac_int8_model_destroy(ac_int8_model **p);

/* The rebuilt graph and plan (owned by the model; ready for ac_qexec_new). */
const ac_graph *ac_int8_model_graph(const ac_int8_model *m);
const ac_plan *ac_int8_model_plan(const ac_int8_model *m);
/* Runs the model at other input shapes (e.g. another batch size): `shapes` as
 * --input_data_shape ("(1,1,28,28)" positional, or "name:(...)"). Shape
 * inference runs again and the plan is rebuilt from the stored table and
 * options (the integer parameters do not depend on shapes). On error the
 * model keeps its previous shapes and plan. Invalidates earlier
 * ac_int8_model_plan() pointers and executors. */
int ac_int8_model_set_input_shapes(ac_int8_model *m, const char *shapes, ac_err *err);

/* The producer string stored in the file. */
const char *ac_int8_model_producer(const ac_int8_model *m);

#endif
