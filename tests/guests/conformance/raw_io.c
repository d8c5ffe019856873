/* Raw reads and writes: several iovecs (with empty ones) for fd_read, fd_write,
 * fd_pread and fd_pwrite; fd_pwrite on an O_APPEND descriptor; fd_seek and fd_tell
 * on stdio; poll_oneoff on file descriptors; and a non-zero proc_exit (the exit code
 * is compared too). */
#define SEED seed
#include "check.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static void seed(void) {
    make_file(P("data.txt"), "0123456789");
    make_file(P("log.txt"), "start\n");
}

static void show(const char *what, __wasi_errno_t e) {
    if (e == 0)
        printf("%s: ok\n", what);
    else
        printf("%s: %s\n", what, errno_name(e));
}

static __wasi_fd_t raw_open(const char *path, __wasi_oflags_t oflags, __wasi_rights_t base,
                            __wasi_fdflags_t fdflags) {
    int dir = open(P(""), O_RDONLY | O_DIRECTORY);
    MUST(dir);
    __wasi_fd_t fd = 0;
    __wasi_errno_t e = __wasi_path_open((__wasi_fd_t)dir, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, path,
                                        oflags, base, base, fdflags, &fd);
    MUST(close(dir));
    if (e != 0) {
        printf("FATAL path_open %s: %s\n", path, errno_name(e));
        exit(1);
    }
    return fd;
}

#define RW (__WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_SEEK | __WASI_RIGHTS_FD_TELL)

/* Reads (or, with `write` set, writes) until every iovec is full or the file ends,
 * at `offset` (fd_pread/fd_pwrite) or at the position (offset < 0), as a client of
 * readv/writev must: a runtime may move fewer bytes per call (the reference moves
 * only the first non-empty iovec). Prints the calls' errors and the total. */
static long transfer(const char *what, __wasi_fd_t fd, __wasi_iovec_t *iov, int cnt, int write,
                     long long offset) {
    long total = 0;
    int first = 1;
    while (cnt > 0) {
        __wasi_size_t n = 0;
        __wasi_errno_t e;
        if (write && offset >= 0)
            e = __wasi_fd_pwrite(fd, (const __wasi_ciovec_t *)iov, cnt, offset + total, &n);
        else if (write)
            e = __wasi_fd_write(fd, (const __wasi_ciovec_t *)iov, cnt, &n);
        else if (offset >= 0)
            e = __wasi_fd_pread(fd, iov, cnt, offset + total, &n);
        else
            e = __wasi_fd_read(fd, iov, cnt, &n);
        if (e != 0) {
            printf("%s: %s after %ld\n", what, errno_name(e), total);
            return -1;
        }
        if (first) {
            /* At least the first non-empty iovec (or all, when they are all empty). */
            size_t want = 0;
            for (int i = 0; i < cnt && want == 0; i++)
                want = iov[i].buf_len;
            printf("%s: the first call moved at least the first non-empty iovec: %s\n", what,
                   n >= want || n == 0 ? "yes" : "no");
            first = 0;
        }
        if (n == 0)
            break;
        total += n;
        while (cnt > 0 && n >= iov->buf_len) {
            n -= iov->buf_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->buf += n;
            iov->buf_len -= n;
        }
    }
    printf("%s: %ld bytes\n", what, total);
    return total;
}

static void iovecs(void) {
    __wasi_fd_t fd = raw_open("data.txt", 0, RW, 0);
    char a[3], b[1], c[4], d[1];
    __wasi_iovec_t in[4] = {{(uint8_t *)a, 3}, {(uint8_t *)b, 0}, {(uint8_t *)c, 4}, {(uint8_t *)d, 1}};
    transfer("fd_read 4 iovecs (3,0,4,1)", fd, in, 4, 0, -1);
    printf("  in the iovecs: %.3s|%.4s|%.1s\n", a, c, d);
    __wasi_filesize_t pos = 0;
    MUST(__wasi_fd_tell(fd, &pos) == 0 ? 0 : -1);
    printf("  position: %llu\n", (unsigned long long)pos);
    __wasi_iovec_t out[3] = {{(uint8_t *)"AB", 2}, {(uint8_t *)"", 0}, {(uint8_t *)"CDE", 3}};
    transfer("fd_write 3 iovecs (2,0,3)", fd, out, 3, 1, -1);
    __wasi_size_t n = 0;
    show("fd_write 0 iovecs", __wasi_fd_write(fd, (const __wasi_ciovec_t *)out, 0, &n));
    printf("  wrote %u\n", (unsigned)n);
    __wasi_iovec_t pout[2] = {{(uint8_t *)"x", 1}, {(uint8_t *)"yz", 2}};
    transfer("fd_pwrite 2 iovecs at 1", fd, pout, 2, 1, 1);
    __wasi_iovec_t pout2[2] = {{(uint8_t *)"x", 1}, {(uint8_t *)"yz", 2}};
    transfer("fd_pwrite 2 iovecs past the end (20)", fd, pout2, 2, 1, 20);
    char p1[2], p2[30];
    __wasi_iovec_t pin[2] = {{(uint8_t *)p1, 2}, {(uint8_t *)p2, sizeof p2}};
    long got = transfer("fd_pread 2 iovecs at 0", fd, pin, 2, 0, 0);
    char all[32];
    memcpy(all, p1, 2);
    if (got > 2)
        memcpy(all + 2, p2, (size_t)got - 2);
    show_bytes("  pread", all, got);
    MUST(__wasi_fd_tell(fd, &pos) == 0 ? 0 : -1);
    printf("  position unchanged by pread/pwrite: %llu\n", (unsigned long long)pos);
    show("fd_seek to the end", __wasi_fd_seek(fd, 0, __WASI_WHENCE_END, &pos));
    __wasi_iovec_t at_end[2] = {{(uint8_t *)a, 3}, {(uint8_t *)c, 4}};
    transfer("fd_read at the end, 2 iovecs", fd, at_end, 2, 0, -1);
    MUST(__wasi_fd_close(fd) == 0 ? 0 : -1);
    show_file("data.txt after", P("data.txt"));
}

/* A 300-byte file from three 100-byte iovecs, never read back here: only the tree
 * comparison (whole contents, hashed past 256 bytes) sees its bytes. */
static void big_file(void) {
    static uint8_t blocks[3][100];
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 100; i++)
            blocks[b][i] = (uint8_t)('a' + (b * 7 + i) % 26);
    __wasi_fd_t fd = raw_open("big.bin", __WASI_OFLAGS_CREAT, RW, 0);
    __wasi_iovec_t out[3] = {{blocks[0], 100}, {blocks[1], 100}, {blocks[2], 100}};
    transfer("fd_write 3 iovecs of 100 bytes", fd, out, 3, 1, -1);
    MUST(__wasi_fd_close(fd) == 0 ? 0 : -1);
}

static void append(void) {
    __wasi_fd_t fd = raw_open("log.txt", 0, RW, __WASI_FDFLAGS_APPEND);
    __wasi_ciovec_t one = {(const uint8_t *)"one\n", 4};
    __wasi_size_t n = 0;
    show("fd_pwrite on O_APPEND at 0", __wasi_fd_pwrite(fd, &one, 1, 0, &n));
    printf("  wrote %u\n", (unsigned)n);
    __wasi_filesize_t pos = 0;
    show("  fd_tell", __wasi_fd_tell(fd, &pos));
    printf("  position: %llu\n", (unsigned long long)pos);
    __wasi_ciovec_t two = {(const uint8_t *)"two\n", 4};
    show("fd_write on O_APPEND", __wasi_fd_write(fd, &two, 1, &n));
    MUST(__wasi_fd_tell(fd, &pos) == 0 ? 0 : -1);
    printf("  position: %llu\n", (unsigned long long)pos);
    MUST(__wasi_fd_close(fd) == 0 ? 0 : -1);
    show_file("log.txt after", P("log.txt"));
}

static void stdio(void) {
    __wasi_filesize_t pos = 0;
    for (__wasi_fd_t fd = 0; fd < 3; fd++) {
        char what[64];
        snprintf(what, sizeof what, "fd_seek fd %u CUR 0", (unsigned)fd);
        show(what, __wasi_fd_seek(fd, 0, __WASI_WHENCE_CUR, &pos));
        snprintf(what, sizeof what, "fd_seek fd %u SET 5", (unsigned)fd);
        show(what, __wasi_fd_seek(fd, 5, __WASI_WHENCE_SET, &pos));
        snprintf(what, sizeof what, "fd_tell fd %u", (unsigned)fd);
        show(what, __wasi_fd_tell(fd, &pos));
    }
}

/* One subscription per poll_oneoff call (a runtime may report fewer of several ready
 * subscriptions per call), with a 5 s clock that must not be what returns. */
static void poll_one(const char *what, __wasi_eventtype_t type, __wasi_fd_t fd) {
    __wasi_subscription_t subs[2];
    memset(subs, 0, sizeof subs);
    subs[0].userdata = 1;
    subs[0].u.tag = type;
    if (type == __WASI_EVENTTYPE_FD_READ)
        subs[0].u.u.fd_read.file_descriptor = fd;
    else
        subs[0].u.u.fd_write.file_descriptor = fd;
    subs[1].userdata = 2;
    subs[1].u.tag = __WASI_EVENTTYPE_CLOCK;
    subs[1].u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    subs[1].u.u.clock.timeout = 5000000000ULL;
    __wasi_event_t ev[2];
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_poll_oneoff(subs, ev, 2, &n);
    if (e != 0) {
        show(what, e);
        return;
    }
    printf("%s: events=%u", what, (unsigned)n);
    for (__wasi_size_t i = 0; i < n; i++)
        printf(" [userdata=%llu type=%d error=%s]", (unsigned long long)ev[i].userdata, ev[i].type,
               ev[i].error ? errno_name(ev[i].error) : "ok");
    putchar('\n');
}

static void poll_fds(void) {
    __wasi_fd_t r = raw_open("data.txt", 0, RW, 0);
    poll_one("poll_oneoff file read", __WASI_EVENTTYPE_FD_READ, r);
    poll_one("poll_oneoff file write", __WASI_EVENTTYPE_FD_WRITE, r);
    poll_one("poll_oneoff stdout write", __WASI_EVENTTYPE_FD_WRITE, 1);
    poll_one("poll_oneoff bad fd read", __WASI_EVENTTYPE_FD_READ, 99);
    MUST(__wasi_fd_close(r) == 0 ? 0 : -1);
}

int main(int argc, char **argv) {
    init(&argc, &argv);
    iovecs();
    big_file();
    append();
    stdio();
    poll_fds();
    printf("proc_exit 7\n");
    /* proc_exit skips atexit: list the tree first. */
    dump_tree();
    __wasi_proc_exit(7);
}
