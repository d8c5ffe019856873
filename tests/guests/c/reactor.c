// A WASI reactor (built with -mexec-model=reactor: _initialize, no _start), for programs
// named PATH#EXPORT. Each export prints its name, then its argv as args.c does.
//   run      no parameters: prints argv; exits with argv[1]'s number after "exit=" if
//            given (its i32 result is the program's exit status), else 0.
//   other    no parameters, no result: prints argv.
//   add      two i32 parameters: prints argv, returns their sum.
// _initialize runs first: `initialized` proves it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

static int initialized;

__attribute__((constructor)) static void init(void) { initialized = 1; }

static int print_args(const char *who) {
    size_t argc = 0, size = 0;
    if (__wasi_args_sizes_get(&argc, &size) != 0) return -1;
    char **argv = calloc(argc + 1, sizeof(char *));
    char *buf = malloc(size + 1);
    if (!argv || !buf || __wasi_args_get((uint8_t **)argv, (uint8_t *)buf) != 0) return -1;
    printf("%s initialized=%d argc=%zu\n", who, initialized, argc);
    int status = 0;
    for (size_t i = 0; i < argc; i++) {
        printf("argv[%zu]=%s\n", i, argv[i]);
        if (strncmp(argv[i], "exit=", 5) == 0) status = atoi(argv[i] + 5);
    }
    fflush(stdout);
    free(argv);
    free(buf);
    return status;
}

__attribute__((export_name("run"))) int run(void) { return print_args("run"); }

__attribute__((export_name("other"))) void other(void) { print_args("other"); }

__attribute__((export_name("add"))) int add(int a, int b) {
    print_args("add");
    return a + b;
}
