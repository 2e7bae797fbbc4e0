/* kiln's runtime, for C99 and any language that calls C: loads a model exported by kiln
 * (`kiln export model.onnx -o model.so`, or kiln::graph::export_library) and runs it. It needs neither
 * LLVM nor protobuf: link libkiln_runtime (shared or static) and nothing else of kiln.
 *
 *     char err[256];
 *     kiln_model* m = kiln_model_load("model.so", err, sizeof err);
 *     if (!m) { fprintf(stderr, "%s\n", err); return 1; }
 *     kiln_model_set_input(m, "input", pixels, shape, 4);
 *     kiln_model_run(m);
 *     const float* out; const int64_t* out_shape; int out_ndim;
 *     kiln_model_output(m, 0, &out, &out_shape, &out_ndim);
 *     kiln_model_free(m);
 *
 * Errors: functions returning int return 0 on success and -1 on failure; functions returning a pointer
 * return NULL. Either way kiln_last_error() then says what went wrong and what to do, naming the input,
 * output or file. No function crashes on bad input, NULL pointers included.
 * A model may be used from one thread at a time; distinct models may run on distinct threads. */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define KILN_API
#else
#define KILN_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_model kiln_model;

/* Loads an exported model. On failure returns NULL and, when `error` is not NULL, writes the message
 * there (at most error_len bytes, always terminated). */
KILN_API kiln_model* kiln_model_load(const char* path, char* error, size_t error_len);
/* Frees a model; NULL is allowed. */
KILN_API void kiln_model_free(kiln_model* model);

KILN_API int kiln_model_num_inputs(const kiln_model* model);
KILN_API const char* kiln_model_input_name(const kiln_model* model, int index);
/* The input's shape (*ndim entries), valid as long as the model. */
KILN_API const int64_t* kiln_model_input_shape(const kiln_model* model, int index, int* ndim);
/* The element type as kiln names it: "f32", "i64", ... */
KILN_API const char* kiln_model_input_dtype(const kiln_model* model, int index);

/* Copies a float32 input in; its shape must be the model's. */
KILN_API int kiln_model_set_input(kiln_model* model, const char* name, const float* data, const int64_t* shape,
                                  int ndim);
/* Copies an input of any element type in: `bytes` must be the input's size in bytes. */
KILN_API int kiln_model_set_input_bytes(kiln_model* model, const char* name, const void* data, size_t bytes);

/* Runs the model on its inputs (inputs never set are zero). */
KILN_API int kiln_model_run(kiln_model* model);

KILN_API int kiln_model_num_outputs(const kiln_model* model);
KILN_API const char* kiln_model_output_name(const kiln_model* model, int index);
KILN_API const char* kiln_model_output_dtype(const kiln_model* model, int index);
/* The output's shape (*ndim entries), valid as long as the model. */
KILN_API const int64_t* kiln_model_output_shape(const kiln_model* model, int index, int* ndim);
/* A float32 output: its data and shape, valid until the next run or free. */
KILN_API int kiln_model_output(const kiln_model* model, int index, const float** data, const int64_t** shape,
                               int* ndim);
/* An output of any element type, as bytes. */
KILN_API const void* kiln_model_output_bytes(const kiln_model* model, int index, size_t* bytes);

/* The number of threads the model's kernels use (the process's thread pool, or OpenMP's for a model
 * exported as C source); 0 keeps the pool as it is. */
KILN_API int kiln_model_set_threads(kiln_model* model, int threads);

/* The message of the last failure on this thread, or "" if there was none. */
KILN_API const char* kiln_last_error(void);
/* The kiln version this runtime was built from, e.g. "0.1.0". */
KILN_API const char* kiln_runtime_version(void);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_H */
