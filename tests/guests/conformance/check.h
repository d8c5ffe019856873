/* Shared helpers for the conformance guests.
 *
 * Every guest takes its scratch directory as argv[1] and prints one line per
 * operation. Results are printed so that the transcript is the same under any
 * correct WASI preview1 implementation: errno values by name, file
 * descriptors only as "ok" (their numbers are the runtime's choice), never
 * timestamps, inode numbers or random bytes.
 */
#ifndef CONFORMANCE_CHECK_H
#define CONFORMANCE_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not every guest uses every helper. */
#define HELPER static __attribute__((unused))

#include "../errno_name.h"

/* The scratch directory (argv[1]). */
static const char *scratch;

/* Call first in main: makes stdout line buffered (so a trap still leaves the
 * transcript up to the failing line) and records argv[1]. */
HELPER void init(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        printf("FATAL usage: %s SCRATCH_DIR\n", argc > 0 ? argv[0] : "guest");
        exit(1);
    }
    scratch = argv[1];
}

/* scratch + "/" + name, in one of 8 rotating buffers so that several paths
 * can be used in one call (rename(P("a"), P("b"))). */
HELPER const char *P(const char *name) {
    static char bufs[8][1024];
    static unsigned next;
    char *b = bufs[next++ % 8];
    int n = snprintf(b, sizeof bufs[0], "%s/%s", scratch, name);
    if (n < 0 || (size_t)n >= sizeof bufs[0]) {
        printf("FATAL path too long: %s\n", name);
        exit(1);
    }
    return b;
}

/* "what: ok" when rc >= 0, else "what: -1 ENAME". For calls whose
 * successful value is not deterministic (file descriptors). */
HELPER void ok(const char *what, long rc) {
    int e = errno;
    if (rc >= 0)
        printf("%s: ok\n", what);
    else
        printf("%s: %ld %s\n", what, rc, errno_name(e));
}

/* "what: N" when rc >= 0, else "what: -1 ENAME". For calls whose value is
 * deterministic (byte counts, offsets, 0 from mkdir...). */
HELPER void val(const char *what, long long rc) {
    int e = errno;
    if (rc >= 0)
        printf("%s: %lld\n", what, rc);
    else
        printf("%s: %lld %s\n", what, rc, errno_name(e));
}

/* A setup step that must succeed; otherwise the harness itself is broken. */
#define MUST(expr)                                                           \
    do {                                                                     \
        if ((long)(expr) < 0) {                                              \
            int must_e_ = errno;                                             \
            printf("FATAL line %d: %s: %s\n", __LINE__, #expr,               \
                   errno_name(must_e_));                                     \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

/* Prints "what: <printable bytes>" with non-printable bytes as \xNN. */
HELPER void show_bytes(const char *what, const char *buf, long n) {
    int e = errno;
    if (n < 0) {
        printf("%s: %ld %s\n", what, n, errno_name(e));
        return;
    }
    printf("%s %ld: ", what, n);
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('\n');
}

/* Creates (or truncates) a file with the given contents; must succeed. */
#include <fcntl.h>
#include <unistd.h>
HELPER void make_file(const char *path, const char *contents) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    MUST(fd);
    size_t len = strlen(contents);
    if (len > 0)
        MUST(write(fd, contents, len) == (ssize_t)len ? 0 : -1);
    MUST(close(fd));
}

/* Reads a whole (small) file by path and prints "what N: contents". */
HELPER void show_file(const char *what, const char *path) {
    char buf[512];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        ok(what, fd);
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    show_bytes(what, buf, n);
    close(fd);
}

HELPER int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#endif
