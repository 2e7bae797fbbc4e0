/* Links kiln's runtime through find_package(kiln) and calls it: a missing model is an error with a message. */
#include <stdio.h>
#include <string.h>

#include <kiln/runtime.h>

int main(int argc, char** argv) {
    char error[512];
    if (argc != 2 || kiln_model_load(argv[1], error, sizeof error) != NULL || strstr(error, "cannot open") == NULL)
        return 1;
    printf("runtime ok (kiln %s)\n", kiln_runtime_version());
    return 0;
}
