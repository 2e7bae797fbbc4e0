/* Classifies an image with a model exported by kiln, from C, linking only the runtime library:
 *
 *     kiln export resnet18.onnx -o resnet18.so
 *     classify resnet18.so image.npy [threads]
 *
 * image.npy holds the model's input as float32 in C order (for ResNet-18, 1x3x224x224, normalised).
 * Prints how long loading and the first inference took, the median of further runs, and the five
 * highest scores of output 0. No LLVM, no protobuf and no C++ here: see README.md beside this file. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kiln/runtime.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Reads a float32, C-order .npy file (format 1.0 to 3.0); returns NULL with a message on anything else. */
static float* read_npy(const char* path, int64_t* shape, int* ndim, size_t* count) {
    FILE* f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "classify: cannot open %s\n", path);
        return NULL;
    }
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "classify: %s is not a .npy file\n", path);
        fclose(f);
        return NULL;
    }
    size_t header_len = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) { /* versions 2 and 3 have a 4-byte header length */
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) header_len = 0;
        header_len |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    char* header = calloc(header_len + 1, 1);
    if (!header || fread(header, 1, header_len, f) != header_len || !strstr(header, "'descr': '<f4'") ||
        strstr(header, "'fortran_order': True")) {
        fprintf(stderr, "classify: %s must hold float32 ('<f4') in C order\n", path);
        free(header);
        fclose(f);
        return NULL;
    }
    const char* s = strstr(header, "'shape': (");
    *ndim = 0;
    *count = 1;
    for (s = s ? s + 10 : ""; *s && *s != ')' && *ndim < 16;) {
        char* end;
        long long d = strtoll(s, &end, 10);
        if (end == s) break;
        shape[(*ndim)++] = d;
        *count *= (size_t)d;
        s = end;
        while (*s == ',' || *s == ' ') ++s;
    }
    free(header);
    float* data = malloc(*count * sizeof(float));
    if (!data || fread(data, sizeof(float), *count, f) != *count) {
        fprintf(stderr, "classify: %s ends before its %zu floats\n", path, *count);
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

int main(int argc, char** argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: classify MODEL.so IMAGE.npy [THREADS]\n");
        return 2;
    }
    int64_t shape[16];
    int ndim;
    size_t count;
    float* image = read_npy(argv[2], shape, &ndim, &count);
    if (!image) return 1;

    char error[1024];
    const double t0 = now_ms();
    kiln_model* model = kiln_model_load(argv[1], error, sizeof error);
    if (!model) {
        fprintf(stderr, "classify: %s\n", error);
        return 1;
    }
    const double t1 = now_ms();
    if (argc == 4 && kiln_model_set_threads(model, atoi(argv[3])) != 0) {
        fprintf(stderr, "classify: %s\n", kiln_last_error());
        return 1;
    }
    const float* scores;
    const int64_t* out_shape;
    int out_ndim;
    if (kiln_model_set_input(model, kiln_model_input_name(model, 0), image, shape, ndim) != 0 ||
        kiln_model_run(model) != 0 || kiln_model_output(model, 0, &scores, &out_shape, &out_ndim) != 0) {
        fprintf(stderr, "classify: %s\n", kiln_last_error());
        return 1;
    }
    const double t2 = now_ms();

    enum { runs = 20 };
    double times[runs];
    for (int r = 0; r < runs; ++r) {
        const double a = now_ms();
        kiln_model_run(model);
        times[r] = now_ms() - a;
    }
    for (int i = 1; i < runs; ++i) /* insertion sort for the median */
        for (int j = i; j > 0 && times[j - 1] > times[j]; --j) {
            const double t = times[j];
            times[j] = times[j - 1];
            times[j - 1] = t;
        }
    printf("load %.1f ms, first inference %.1f ms (load and first inference %.1f ms), then median %.2f ms over %d "
           "runs\n",
           t1 - t0, t2 - t1, t2 - t0, times[runs / 2], runs);

    const int classes = (int)out_shape[out_ndim - 1];
    int* order = malloc((size_t)classes * sizeof(int));
    for (int i = 0; i < classes; ++i) order[i] = i;
    for (int i = 0; i < 5 && i < classes; ++i) { /* partial selection: the five best in order */
        int best = i;
        for (int j = i + 1; j < classes; ++j)
            if (scores[order[j]] > scores[order[best]]) best = j;
        const int t = order[i];
        order[i] = order[best];
        order[best] = t;
        printf("class %4d  score %8.4f\n", order[i], scores[order[i]]);
    }
    free(order);
    free(image);
    kiln_model_free(model);
    return 0;
}
