// With no arguments prints the whole environment, one KEY=VALUE per line, in order.
// With arguments prints NAME=value or NAME is unset for each name.
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc == 1) {
        for (char **e = environ; *e; e++) printf("%s\n", *e);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *v = getenv(argv[i]);
        if (v) printf("%s=%s\n", argv[i], v);
        else printf("%s is unset\n", argv[i]);
    }
    return 0;
}
