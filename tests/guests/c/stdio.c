// Copies stdin to stdout, then writes a summary to stderr, so the test can tell the
// streams apart.
#include <stdio.h>

int main(void) {
    char buf[4096];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        if (fwrite(buf, 1, n, stdout) != n) return 3;
        total += n;
    }
    if (ferror(stdin)) return 4;
    fprintf(stderr, "stdio: copied %zu bytes\n", total);
    return 0;
}
