/* Raw fd_readdir, not through wasi-libc's buffering: a whole listing, cookies past
 * the end, a cookie kept across changes to the directory (stale), a cookie used on
 * a fresh descriptor, and buffers smaller than one entry. Cookie values are the
 * runtime's choice and the order of entries the host's, so only counts, sorted
 * names and sizes are printed. */
#define SEED seed
#include "check.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static void seed(void) {
    MUST(mkdir(P("rd"), 0755));
    make_file(P("rd/apple"), "a");
    make_file(P("rd/banana"), "bb");
    make_file(P("rd/cherry"), "ccc");
    MUST(mkdir(P("rd/sub"), 0755));
}

#define DIRENT_HEADER 24
#define MAXE 64

struct entry {
    char name[64];
    __wasi_dircookie_t next;
    int type;
};

/* Parses a fd_readdir buffer; returns the number of whole entries. */
static int parse(const uint8_t *buf, size_t used, struct entry *out, int max) {
    size_t off = 0;
    int n = 0;
    while (off + DIRENT_HEADER <= used && n < max) {
        __wasi_dirent_t d;
        memcpy(&d, buf + off, sizeof d);
        if (off + DIRENT_HEADER + d.d_namlen > used)
            break;
        size_t len = d.d_namlen < 63 ? d.d_namlen : 63;
        memcpy(out[n].name, buf + off + DIRENT_HEADER, len);
        out[n].name[len] = '\0';
        out[n].next = d.d_next;
        out[n].type = d.d_type;
        n++;
        off += DIRENT_HEADER + d.d_namlen;
    }
    return n;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Prints "what: used=N entries=K: name/type ..." sorted by name. */
static void show_listing(const char *what, __wasi_errno_t e, const uint8_t *buf, __wasi_size_t used,
                         int print_used) {
    if (e != 0) {
        printf("%s: %s\n", what, errno_name(e));
        return;
    }
    struct entry es[MAXE];
    int n = parse(buf, used, es, MAXE);
    qsort(es, n, sizeof es[0], cmp_entry);
    if (print_used)
        printf("%s: used=%u entries=%d:", what, (unsigned)used, n);
    else
        printf("%s: entries=%d:", what, n);
    for (int i = 0; i < n; i++)
        printf(" %s/%d", es[i].name, es[i].type);
    putchar('\n');
}

static __wasi_fd_t open_dir(const char *name) {
    int fd = open(P(name), O_RDONLY | O_DIRECTORY);
    MUST(fd);
    return (__wasi_fd_t)fd;
}

int main(int argc, char **argv) {
    init(&argc, &argv);
    static uint8_t buf[8192];
    __wasi_size_t used = 0;
    __wasi_errno_t e;
    struct entry es[MAXE];

    /* The whole listing; the used size is the sum of the entries (the same names in
     * any order). */
    __wasi_fd_t d = open_dir("rd");
    e = __wasi_fd_readdir(d, buf, sizeof buf, 0, &used);
    show_listing("readdir all", e, buf, used, 1);
    int n = e == 0 ? parse(buf, used, es, MAXE) : 0;
    __wasi_dircookie_t end = n > 0 ? es[n - 1].next : 0;

    /* Past the end: the last entry's d_next, and far beyond it. */
    e = __wasi_fd_readdir(d, buf, sizeof buf, end, &used);
    show_listing("readdir at the last d_next", e, buf, used, 1);
    e = __wasi_fd_readdir(d, buf, sizeof buf, end + 1000, &used);
    show_listing("readdir far past the end", e, buf, used, 1);
    e = __wasi_fd_readdir(d, buf, sizeof buf, ~(__wasi_dircookie_t)0, &used);
    show_listing("readdir at cookie max", e, buf, used, 1);

    /* Resuming: each entry's d_next gives the rest of the listing. */
    int resumed_ok = 1;
    for (int i = 0; i < n; i++) {
        static uint8_t rest[8192];
        __wasi_size_t got = 0;
        if (__wasi_fd_readdir(d, rest, sizeof rest, es[i].next, &got) != 0 ||
            parse(rest, got, (struct entry[MAXE]){0}, MAXE) != n - i - 1)
            resumed_ok = 0;
    }
    printf("readdir from each d_next gives the entries after it: %s\n", resumed_ok ? "yes" : "no");

    /* Stale: a cookie from before the directory changed. Which names come after it
     * depends on the order; print only what does not. */
    __wasi_dircookie_t mid = n > 2 ? es[2].next : 0;
    make_file(P("rd/date"), "dddd");
    MUST(unlink(P("rd/apple")));
    e = __wasi_fd_readdir(d, buf, sizeof buf, mid, &used);
    if (e != 0) {
        printf("readdir stale cookie: %s\n", errno_name(e));
    } else {
        struct entry st[MAXE];
        int k = parse(buf, used, st, MAXE);
        int bad = 0;
        const char *known[] = {".", "..", "apple", "banana", "cherry", "sub", "date"};
        for (int i = 0; i < k; i++) {
            int found = 0;
            for (size_t j = 0; j < sizeof known / sizeof known[0]; j++)
                found |= strcmp(st[i].name, known[j]) == 0;
            bad |= !found;
        }
        printf("readdir stale cookie: ok, only names that existed: %s\n", bad ? "no" : "yes");
    }
    e = __wasi_fd_readdir(d, buf, sizeof buf, 0, &used);
    show_listing("readdir from 0 after the changes", e, buf, used, 1);
    MUST(close((int)d));

    /* A cookie used on a fresh descriptor that never listed from 0. */
    d = open_dir("rd");
    e = __wasi_fd_readdir(d, buf, sizeof buf, mid, &used);
    if (e != 0)
        printf("readdir fresh fd at a cookie: %s\n", errno_name(e));
    else
        printf("readdir fresh fd at a cookie: entries=%d\n", parse(buf, used, es, MAXE));

    /* Buffers smaller than one entry: the runtime fills what fits (used equals the
     * buffer size, which says "call again with a bigger buffer"). The first entry
     * is "." in both runtimes. */
    __wasi_size_t sizes[] = {0, 1, 10, 23, 24, 25};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memset(buf, 0xee, 64);
        e = __wasi_fd_readdir(d, buf, sizes[i], 0, &used);
        if (e != 0) {
            printf("readdir buffer %u: %s\n", (unsigned)sizes[i], errno_name(e));
            continue;
        }
        printf("readdir buffer %u: used=%u", (unsigned)sizes[i], (unsigned)used);
        if (used >= DIRENT_HEADER) {
            __wasi_dirent_t h;
            memcpy(&h, buf, sizeof h);
            printf(" namlen=%u type=%d", (unsigned)h.d_namlen, h.d_type);
        }
        if (used < 64)
            printf(" byte after used untouched: %s", buf[used] == 0xee ? "yes" : "no");
        putchar('\n');
    }
    MUST(close((int)d));

    /* fd_readdir on a file and on a bad descriptor. */
    int f = open(P("rd/banana"), O_RDONLY);
    MUST(f);
    show_listing("readdir on a file", __wasi_fd_readdir((__wasi_fd_t)f, buf, sizeof buf, 0, &used), buf, used, 1);
    MUST(close(f));
    show_listing("readdir on a bad fd", __wasi_fd_readdir(99, buf, sizeof buf, 0, &used), buf, used, 1);
    return 0;
}
