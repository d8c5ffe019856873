/* Edges of preview1's capability model that an outside conformance suite found
 * Capsule answering differently from wasmtime: a path that starts with '/' given to
 * path_open relative to a directory descriptor; path_symlink with an absolute target;
 * a file created by path_open(O_CREAT) with read/write/seek/tell rights and no
 * inheriting rights, then written; and the rights of a descriptor opened on a hard
 * link against one opened the same way on the original name. Raw calls, so that
 * wasi-libc's own rights and path handling do not hide the host's answers. */
#define SEED seed
#include "check.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static void seed(void) {
    MUST(mkdir(P("dir"), 0755));
    MUST(mkdir(P("dir/nested"), 0755));
    make_file(P("dir/nested/file"), "nested");
    make_file(P("dir/data.txt"), "0123456789");
}

static void show(const char *what, __wasi_errno_t e) {
    if (e == 0)
        printf("%s: ok\n", what);
    else
        printf("%s: %s\n", what, errno_name(e));
}

static __wasi_fd_t dir_fd(const char *name) {
    int fd = open(P(name), O_RDONLY | O_DIRECTORY);
    MUST(fd);
    return (__wasi_fd_t)fd;
}

/* Closes a descriptor this program opened; must succeed. */
static void cl(__wasi_fd_t fd) {
    MUST(__wasi_fd_close(fd) == 0 ? 0 : -1);
}

static void rights_of(const char *what, __wasi_fd_t fd) {
    __wasi_fdstat_t st;
    __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
    if (e != 0) {
        show(what, e);
        return;
    }
    printf("%s: base=0x%08llx inheriting=0x%08llx\n", what, (unsigned long long)st.fs_rights_base,
           (unsigned long long)st.fs_rights_inheriting);
}

static size_t preopen_len;

/* `rel` under the scratch directory, as a path relative to its preopen. */
static const char *under_preopen(const char *rel) {
    static char buf[512];
    const char *tail = scratch + preopen_len;
    while (*tail == '/')
        tail++;
    snprintf(buf, sizeof buf, "%s%s%s", tail, *tail ? "/" : "", rel);
    return buf;
}

int main(int argc, char **argv) {
    init(&argc, &argv);
    __wasi_fd_t dir = dir_fd("dir");
    __wasi_fd_t fd = 0;
    const __wasi_rights_t rw = __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE |
                               __WASI_RIGHTS_FD_SEEK | __WASI_RIGHTS_FD_TELL;

    /* 1. An absolute path relative to a directory descriptor. */
    show("path_open /dir/nested/file", __wasi_path_open(dir, 0, "/dir/nested/file", 0,
                                                        __WASI_RIGHTS_FD_READ, 0, 0, &fd));
    show("path_open /nested/file", __wasi_path_open(dir, 0, "/nested/file", 0,
                                                    __WASI_RIGHTS_FD_READ, 0, 0, &fd));
    show("path_open nested/file", __wasi_path_open(dir, 0, "nested/file", 0,
                                                   __WASI_RIGHTS_FD_READ, 0, 0, &fd));
    if (fd > 2)
        cl(fd);

    /* 2. A symlink whose target is absolute. */
    show("path_symlink / abs", __wasi_path_symlink("/", dir, "abs"));
    show("path_symlink nested rel", __wasi_path_symlink("nested", dir, "rel"));

    /* 3. Created with read/write/seek/tell and no inheriting rights, then written. */
    fd = 0;
    __wasi_errno_t e = __wasi_path_open(dir, 0, "created.txt", __WASI_OFLAGS_CREAT, rw, 0, 0, &fd);
    show("path_open creat rw", e);
    if (e == 0) {
        rights_of("created rights", fd);
        __wasi_ciovec_t iov = {(const uint8_t *)"abc", 3};
        __wasi_size_t n = 0;
        show("fd_write created", __wasi_fd_write(fd, &iov, 1, &n));
        cl(fd);
    }

    /* 4. A hard link and its original, opened the same way. */
    show("path_link", __wasi_path_link(dir, 0, "data.txt", dir, "hard.txt"));
    __wasi_fd_t a = 0, b = 0;
    show("open original", __wasi_path_open(dir, 0, "data.txt", 0, rw, 0, 0, &a));
    show("open link", __wasi_path_open(dir, 0, "hard.txt", 0, rw, 0, 0, &b));
    rights_of("original rights", a);
    rights_of("link rights", b);

    /* 3 and 4 again, relative to the preopen itself (its own inheriting rights). */
    __wasi_fd_t pre = scratch_preopen(&preopen_len);
    __wasi_fd_t c = 0, l = 0, o = 0;
    e = __wasi_path_open(pre, 0, under_preopen("dir/created2.txt"), __WASI_OFLAGS_CREAT, rw, 0, 0, &c);
    show("preopen: path_open creat rw", e);
    if (e == 0) {
        rights_of("preopen: created rights", c);
        __wasi_ciovec_t iov = {(const uint8_t *)"xyz", 3};
        __wasi_size_t n = 0;
        show("preopen: fd_write created", __wasi_fd_write(c, &iov, 1, &n));
        cl(c);
    }
    show("preopen: open link", __wasi_path_open(pre, 0, under_preopen("dir/hard.txt"), 0, rw, 0, 0, &l));
    show("preopen: open original", __wasi_path_open(pre, 0, under_preopen("dir/data.txt"), 0, rw, 0, 0, &o));
    rights_of("preopen: link rights", l);
    rights_of("preopen: original rights", o);
    if (l > 2)
        cl(l);
    if (o > 2)
        cl(o);
    if (a > 2)
        cl(a);
    if (b > 2)
        cl(b);
    cl(dir);
    return 0;
}
