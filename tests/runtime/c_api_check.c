/* A C99 program that links only the runtime library (libkiln_runtime): loads an exported model, checks
 * that misuse returns error codes and messages rather than crashing, runs the model on an input read
 * from a raw float32 file and writes output 0 as raw float32, for tests/graph/test_export.cpp to hold
 * against the JIT.   usage: c_api_check MODEL.so INPUT.f32 OUTPUT.f32 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kiln/runtime.h>

static int failures = 0;

static void expect(int ok, const char* what) {
    if (!ok) {
        fprintf(stderr, "c_api_check: %s (last error: %s)\n", what, kiln_last_error());
        ++failures;
    }
}

/* A call that must fail with a message containing `part`. */
static void expect_error(int failed, const char* part, const char* what) {
    expect(failed, what);
    if (failed && strstr(kiln_last_error(), part) == NULL) {
        fprintf(stderr, "c_api_check: %s: the message '%s' does not mention '%s'\n", what, kiln_last_error(), part);
        ++failures;
    }
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: c_api_check MODEL.so INPUT.f32 OUTPUT.f32\n");
        return 2;
    }
    char err[512];
    expect_error(kiln_model_load("/nonexistent/model.so", err, sizeof err) == NULL, "cannot open",
                 "loading a missing file");
    expect(strstr(err, "cannot open") != NULL, "the error buffer holds the message");
    expect_error(kiln_model_load(NULL, NULL, 0) == NULL, "the path is NULL", "loading a NULL path");
    expect_error(kiln_model_run(NULL) == -1, "the model is NULL", "running a NULL model");
    expect_error(kiln_model_num_inputs(NULL) == -1, "the model is NULL", "counting the inputs of a NULL model");
    kiln_model_free(NULL);

    kiln_model* m = kiln_model_load(argv[1], err, sizeof err);
    if (!m) {
        fprintf(stderr, "c_api_check: %s\n", err);
        return 1;
    }
    expect(strcmp(kiln_last_error(), "") == 0, "a successful load leaves no error");
    expect(kiln_model_num_inputs(m) == 1 && kiln_model_num_outputs(m) == 1, "one input and one output");
    const char* name = kiln_model_input_name(m, 0);
    int ndim = 0;
    const int64_t* shape = kiln_model_input_shape(m, 0, &ndim);
    if (!name || !shape) return 1;
    expect(strcmp(kiln_model_input_dtype(m, 0), "f32") == 0, "the input is f32");
    expect_error(kiln_model_input_name(m, 1) == NULL, "there is no input 1", "an input index out of range");
    expect_error(kiln_model_input_shape(m, 0, NULL) == NULL, "ndim is NULL", "a NULL ndim");

    size_t count = 1;
    for (int d = 0; d < ndim; ++d) count *= (size_t)shape[d];
    float* input = malloc(count * sizeof(float));
    FILE* f = fopen(argv[2], "rb");
    if (!input || !f || fread(input, sizeof(float), count, f) != count) {
        fprintf(stderr, "c_api_check: cannot read %zu floats from %s\n", count, argv[2]);
        return 1;
    }
    fclose(f);

    int64_t wrong[16];
    memcpy(wrong, shape, (size_t)ndim * sizeof(int64_t));
    wrong[ndim - 1] += 1;
    expect_error(kiln_model_set_input(m, "no_such_input", input, shape, ndim) == -1, "has no input 'no_such_input'",
                 "a wrong input name");
    expect_error(kiln_model_set_input(m, name, input, wrong, ndim) == -1, "has shape", "a wrong input shape");
    expect_error(kiln_model_set_input(m, name, input, shape, ndim - 1) == -1, "has shape",
                 "a wrong number of dimensions");
    expect_error(kiln_model_set_input(m, name, NULL, shape, ndim) == -1, "is NULL", "NULL input data");
    expect_error(kiln_model_set_input(m, NULL, input, shape, ndim) == -1, "the input name is NULL",
                 "a NULL input name");
    expect_error(kiln_model_set_input_bytes(m, name, input, 3) == -1, "takes", "a wrong byte count");
    expect_error(kiln_model_set_threads(m, -1) == -1, "threads is -1", "a negative thread count");

    expect(kiln_model_set_threads(m, 2) == 0, "setting two threads");
    expect(kiln_model_set_input(m, name, input, shape, ndim) == 0, "setting the input");
    expect(kiln_model_run(m) == 0, "running the model");
    const float* out = NULL;
    const int64_t* out_shape = NULL;
    int out_ndim = 0;
    expect_error(kiln_model_output(m, 7, &out, &out_shape, &out_ndim) == -1, "there is no output 7",
                 "an output index out of range");
    expect_error(kiln_model_output(m, 0, NULL, &out_shape, &out_ndim) == -1, "data is NULL", "NULL output data");
    if (kiln_model_output(m, 0, &out, &out_shape, &out_ndim) != 0) return 1;
    size_t out_count = 1;
    for (int d = 0; d < out_ndim; ++d) out_count *= (size_t)out_shape[d];
    f = fopen(argv[3], "wb");
    if (!f || fwrite(out, sizeof(float), out_count, f) != out_count) return 1;
    fclose(f);

    kiln_model_free(m);
    free(input);
    return failures == 0 ? 0 : 1;
}
