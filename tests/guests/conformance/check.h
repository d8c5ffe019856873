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
#include <wasi/api.h>

/* Not every guest uses every helper. */
#define HELPER static __attribute__((unused))

#include "../errno_name.h"

/* The scratch directory (argv[1]). */
static const char *scratch;

/* The program's starting files, when it has any: a program defines SEED as the
 * name of a function that creates them (with make_file, MUST(mkdir(...))) before
 * including this header. */
#ifdef SEED
static void SEED(void);
#endif

static void dump_tree(void);

/* Call first in main: makes stdout line buffered (so a trap still leaves the
 * transcript up to the failing line), records argv[1], and takes an optional
 * mode from argv[2] out of argv (so the program never sees it):
 *   seed    creates the starting files (SEED) and exits, printing nothing;
 *   seeded  creates them, then runs the program;
 *   none    runs the program over starting files that already exist (the
 *           harness put them in a read-only lower layer).
 * At exit the tree left in the scratch directory is printed as TREE lines
 * (dump_tree), so that the harness can compare it on any backend. */
HELPER void init(int *argc, char ***argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (*argc < 2) {
        printf("FATAL usage: %s SCRATCH_DIR [seed|seeded]\n",
               *argc > 0 ? (*argv)[0] : "guest");
        exit(1);
    }
    scratch = (*argv)[1];
    int seed_ = 0, run_ = 1;
    if (*argc > 2 && strcmp((*argv)[2], "seed") == 0)
        seed_ = 1, run_ = 0;
    else if (*argc > 2 && strcmp((*argv)[2], "seeded") == 0)
        seed_ = 1;
    if (seed_) {
        for (int i = 2; i < *argc; i++)
            (*argv)[i] = (*argv)[i + 1];
        (*argc)--;
#ifdef SEED
        SEED();
#endif
    }
    if (!run_)
        exit(0);
    atexit(dump_tree);
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

/* The tree below the scratch directory, one line per entry, sorted by path:
 *   TREE<tab>path<tab>dir
 *   TREE<tab>path<tab>symlink -> target
 *   TREE<tab>path<tab>file N bytes: "contents"   (N <= 256; bytes outside
 *                                       printable ASCII, " and \ as \xNN)
 *   TREE<tab>path<tab>file N bytes fnv1a64=HEX    (longer files)
 * The harness reads the same description from the host for the reference run
 * (and checks that it equals the reference's own TREE lines), so any backend's
 * tree can be compared, also ones that live only inside Capsule. */
#include <dirent.h>
#include <sys/stat.h>

#define TREE_MAX 4096
static char *tree_lines[TREE_MAX];
static int tree_count;

static void tree_add(char *line) {
    if (tree_count < TREE_MAX)
        tree_lines[tree_count++] = line;
    else
        free(line);
}

static char *describe_file(const char *path, long long size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return strdup(errno_name(errno));
    unsigned long long hash = 0xcbf29ce484222325ULL;
    unsigned char head[256];
    long long total = 0;
    unsigned char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (total + i < (long long)sizeof head)
                head[total + i] = buf[i];
            hash = (hash ^ buf[i]) * 0x100000001b3ULL;
        }
        total += n;
    }
    int e = errno;
    close(fd);
    if (n < 0)
        return strdup(errno_name(e));
    (void)size;
    char *out = malloc(64 + 4 * sizeof head);
    if (!out)
        exit(1);
    if (total > (long long)sizeof head) {
        sprintf(out, "file %lld bytes fnv1a64=%016llx", total, hash);
        return out;
    }
    char *p = out + sprintf(out, "file %lld bytes: \"", total);
    for (long long i = 0; i < total; i++) {
        unsigned char c = head[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            *p++ = (char)c;
        else
            p += sprintf(p, "\\x%02x", c);
    }
    strcpy(p, "\"");
    return out;
}

static void tree_walk(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s%s%s", scratch, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) {
        char *line = malloc(1200);
        if (!line)
            exit(1);
        snprintf(line, 1200, "TREE\t%s\tunreadable dir: %s", *rel ? rel : ".", errno_name(errno));
        tree_add(line);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[1024], full[1100];
        snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", scratch, child);
        struct stat st;
        char *desc;
        int is_dir = 0;
        if (lstat(full, &st) < 0) {
            desc = strdup(errno_name(errno));
        } else if (S_ISLNK(st.st_mode)) {
            char target[1024];
            ssize_t n = readlink(full, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = '\0';
            desc = malloc(1100);
            if (!desc)
                exit(1);
            snprintf(desc, 1100, "symlink -> %s", target);
        } else if (S_ISDIR(st.st_mode)) {
            desc = strdup("dir");
            is_dir = 1;
        } else {
            desc = describe_file(full, (long long)st.st_size);
        }
        size_t len = strlen(child) + strlen(desc) + 8;
        char *line = malloc(len);
        if (!line)
            exit(1);
        snprintf(line, len, "TREE\t%s\t%s", child, desc);
        free(desc);
        tree_add(line);
        if (is_dir)
            tree_walk(child);
    }
    closedir(d);
}

static void dump_tree(void) {
    tree_walk("");
    qsort(tree_lines, tree_count, sizeof tree_lines[0], cmp_str);
    for (int i = 0; i < tree_count; i++) {
        printf("%s\n", tree_lines[i]);
        free(tree_lines[i]);
    }
    fflush(stdout);
}

/* The preopen libc resolves the scratch directory against: the longest name that is
 * a prefix of it ("/" and "." count as the empty prefix). `prefix_len`, when given,
 * gets the length of that prefix. */
HELPER __wasi_fd_t scratch_preopen(size_t *prefix_len) {
    __wasi_fd_t best = 0;
    size_t best_len = 0;
    int found = 0;
    for (__wasi_fd_t fd = 3; fd < 64; fd++) {
        __wasi_prestat_t pre;
        if (__wasi_fd_prestat_get(fd, &pre) != 0)
            continue;
        char name[256];
        size_t len = pre.u.dir.pr_name_len;
        if (len >= sizeof name || __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != 0)
            continue;
        name[len] = '\0';
        size_t match = 0;
        if (strcmp(name, "/") == 0 || strcmp(name, ".") == 0)
            match = 0;
        else if (strncmp(scratch, name, len) == 0 && (scratch[len] == '\0' || scratch[len] == '/'))
            match = len;
        else
            continue;
        if (!found || match > best_len) {
            best = fd;
            best_len = match;
            found = 1;
        }
    }
    if (!found) {
        printf("FATAL no preopen covers %s\n", scratch);
        exit(1);
    }
    if (prefix_len)
        *prefix_len = best_len;
    return best;
}

#endif
