/* stat/lstat/fstat file types and sizes, setting timestamps. */
#define SEED seed
#include "check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static const char *type_of(mode_t m) {
    return S_ISREG(m)    ? "regular"
           : S_ISDIR(m)  ? "directory"
           : S_ISLNK(m)  ? "symlink"
           : S_ISCHR(m)  ? "chardev"
           : S_ISBLK(m)  ? "blockdev"
           : S_ISFIFO(m) ? "fifo"
           : S_ISSOCK(m) ? "socket"
                         : "unknown";
}

/* Prints type and (for non-directories) size; directory sizes depend on
 * the host file system. */
static void show(const char *what, const char *path, int follow) {
    struct stat st;
    int rc = follow ? stat(path, &st) : lstat(path, &st);
    if (rc < 0) {
        val(what, rc);
        return;
    }
    if (S_ISDIR(st.st_mode))
        printf("%s: %s\n", what, type_of(st.st_mode));
    else
        printf("%s: %s size=%lld\n", what, type_of(st.st_mode), (long long)st.st_size);
}

static void times(const char *what, const char *path) {
    struct stat st;
    int rc = stat(path, &st);
    if (rc < 0) {
        val(what, rc);
        return;
    }
    printf("%s: atime=%lld.%09ld mtime=%lld.%09ld\n", what, (long long)st.st_atim.tv_sec,
           st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static struct timespec mtime_of(const char *path) {
    struct stat st;
    MUST(stat(path, &st));
    return st.st_mtim;
}

static int same(struct timespec a, struct timespec b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* The starting files (in a read-only lower layer on the layered backend). */
static void seed(void) {
    make_file(P("f"), "0123456789abcdef");
    make_file(P("empty"), "");
    MUST(mkdir(P("d"), 0755));
    MUST(symlink("f", P("lf")));
    MUST(symlink("d", P("ld")));
    MUST(symlink("missing", P("dangling")));
}

int main(int argc, char **argv) {
    init(&argc, &argv);


    /* Types and sizes. */
    show("stat f", P("f"), 1);
    show("stat empty", P("empty"), 1);
    show("stat d", P("d"), 1);
    show("stat lf", P("lf"), 1);
    show("lstat lf", P("lf"), 0);
    show("stat ld", P("ld"), 1);
    show("lstat ld", P("ld"), 0);
    show("stat dangling", P("dangling"), 1);
    show("lstat dangling", P("dangling"), 0);
    show("stat missing", P("missing"), 1);
    show("lstat missing", P("missing"), 0);
    show("stat through file", P("f/x"), 1);
    show("stat f/ trailing slash", P("f/"), 1);
    show("stat d/ trailing slash", P("d/"), 1);
    show("stat scratch", P(""), 1);
    show("stat d/..", P("d/.."), 1);
    {
        struct stat st;
        val("stat empty path", stat("", &st));
    }

    /* fstat agrees with stat. */
    {
        struct stat a, b, c;
        int fd = open(P("f"), O_RDONLY);
        MUST(fd);
        MUST(fstat(fd, &a));
        MUST(stat(P("f"), &b));
        MUST(stat(P("lf"), &c));
        printf("fstat f: %s size=%lld\n", type_of(a.st_mode), (long long)a.st_size);
        printf("fstat ino equals stat ino: %s\n", a.st_ino == b.st_ino ? "yes" : "no");
        printf("stat via symlink ino equals: %s\n", c.st_ino == b.st_ino ? "yes" : "no");
        printf("nlink f: %lld\n", (long long)a.st_nlink);
        close(fd);
        /* The same for a file made now (on the layered backend: in the writable
         * layer, where f is in the lower one). */
        make_file(P("fresh"), "fresh");
        fd = open(P("fresh"), O_RDONLY);
        MUST(fd);
        MUST(fstat(fd, &a));
        MUST(stat(P("fresh"), &b));
        printf("fstat ino equals stat ino, new file: %s\n", a.st_ino == b.st_ino ? "yes" : "no");
        close(fd);
        MUST(unlink(P("fresh")));
        fd = open(P("d"), O_RDONLY | O_DIRECTORY);
        MUST(fd);
        MUST(fstat(fd, &a));
        printf("fstat d: %s\n", type_of(a.st_mode));
        close(fd);
        struct stat d1, d2;
        MUST(stat(P("f"), &d1));
        MUST(stat(P("d"), &d2));
        printf("st_dev equal for f and d: %s\n", d1.st_dev == d2.st_dev ? "yes" : "no");
    }

    /* Standard streams: the harness must run guests with stdin from
     * /dev/null and stdout captured (not terminals). */
    {
        struct stat st;
        int rc = fstat(0, &st);
        if (rc < 0)
            val("fstat stdin", rc);
        else
            printf("fstat stdin: %s S_ISCHR=%d\n", type_of(st.st_mode), S_ISCHR(st.st_mode) != 0);
        rc = fstat(1, &st);
        if (rc < 0)
            val("fstat stdout", rc);
        else
            printf("fstat stdout: %s S_ISCHR=%d\n", type_of(st.st_mode), S_ISCHR(st.st_mode) != 0);
        val("fstat bad fd", fstat(99, &st));
    }

    /* Explicit times. */
    struct timespec ts[2] = {{1000000000, 0}, {1100000000, 500000000}};
    val("utimensat explicit", utimensat(AT_FDCWD, P("f"), ts, 0));
    times("times after utimensat", P("f"));
    struct timespec omit[2] = {{1234567890, 0}, {0, UTIME_OMIT}};
    val("utimensat atime only (mtime UTIME_OMIT)", utimensat(AT_FDCWD, P("f"), omit, 0));
    times("times after omit", P("f"));
    struct timespec omit2[2] = {{0, UTIME_OMIT}, {1300000000, 0}};
    val("utimensat mtime only (atime UTIME_OMIT)", utimensat(AT_FDCWD, P("f"), omit2, 0));
    times("times after omit2", P("f"));
    {
        int fd = open(P("empty"), O_RDWR);
        MUST(fd);
        struct timespec f2[2] = {{2000000000, 0}, {2000000001, 0}};
        val("futimens explicit", futimens(fd, f2));
        times("times after futimens", P("empty"));
        struct timespec before = mtime_of(P("empty"));
        val("write via fd", write(fd, "x", 1));
        MUST(close(fd));
        printf("write changed mtime: %s\n", same(before, mtime_of(P("empty"))) ? "no" : "yes");
        fd = open(P("empty"), O_RDONLY);
        MUST(fd);
        val("futimens on rdonly fd", futimens(fd, f2));
        times("times after futimens rdonly", P("empty"));
        close(fd);
    }

    /* UTIME_NOW. This wasi-libc (Debian 0.0~git20220510) rejects UTIME_NOW
     * and UTIME_OMIT in the mtime slot with EINVAL before any WASI call, and
     * turns a NULL times pointer into explicit zero timestamps, so the
     * runtime's *_NOW handling is exercised with raw WASI calls below. */
    {
        struct timespec before;
        struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
        val("utimensat mtime UTIME_NOW", utimensat(AT_FDCWD, P("f"), now, 0));
        struct timespec anow[2] = {{0, UTIME_NOW}, {1300000000, 0}};
        val("utimensat atime UTIME_NOW", utimensat(AT_FDCWD, P("f"), anow, 0));
        printf("mtime after atime UTIME_NOW: %lld\n", (long long)mtime_of(P("f")).tv_sec);
        val("utimensat NULL", utimensat(AT_FDCWD, P("f"), NULL, 0));
        times("times after utimensat NULL", P("f"));

        MUST(utimensat(AT_FDCWD, P("f"), ts, 0));
        before = mtime_of(P("f"));
        int fd = open(P("f"), O_RDWR);
        MUST(fd);
        __wasi_errno_t e = __wasi_fd_filestat_set_times(fd, 0, 0, __WASI_FSTFLAGS_MTIM_NOW);
        printf("raw MTIM_NOW: %s\n", e ? errno_name(e) : "ok");
        printf("mtime changed: %s\n", same(before, mtime_of(P("f"))) ? "no" : "yes");
        printf("mtime now is after 2020: %s\n", mtime_of(P("f")).tv_sec > 1577836800 ? "yes" : "no");
        {
            struct stat st;
            MUST(stat(P("f"), &st));
            printf("atime kept by raw MTIM_NOW: %lld\n", (long long)st.st_atim.tv_sec);
        }
        e = __wasi_fd_filestat_set_times(fd, 7000000000ull, 0, __WASI_FSTFLAGS_ATIM);
        printf("raw ATIM only: %s\n", e ? errno_name(e) : "ok");
        e = __wasi_fd_filestat_set_times(fd, 1, 0, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW);
        printf("raw ATIM|ATIM_NOW: %s\n", e ? errno_name(e) : "ok");
        e = __wasi_fd_filestat_set_times(fd, 0, 1, __WASI_FSTFLAGS_MTIM | __WASI_FSTFLAGS_MTIM_NOW);
        printf("raw MTIM|MTIM_NOW: %s\n", e ? errno_name(e) : "ok");
        e = __wasi_fd_filestat_set_times(fd, 0, 0, 0);
        printf("raw no flags: %s\n", e ? errno_name(e) : "ok");
        e = __wasi_path_filestat_set_times(fd, 0, "x", 8000000000ull, 0, __WASI_FSTFLAGS_ATIM);
        printf("raw path_filestat_set_times on file fd: %s\n", e ? errno_name(e) : "ok");
        close(fd);
        struct stat st;
        MUST(stat(P("f"), &st));
        printf("atime after raw calls: %lld\n", (long long)st.st_atim.tv_sec);
    }

    /* Symlinks: following (default) and AT_SYMLINK_NOFOLLOW. */
    {
        struct timespec t[2] = {{1400000000, 0}, {1400000000, 0}};
        val("utimensat via symlink", utimensat(AT_FDCWD, P("lf"), t, 0));
        times("times f after utimensat via symlink", P("f"));
        struct timespec t2[2] = {{1500000000, 0}, {1500000000, 0}};
        val("utimensat NOFOLLOW on symlink",
            utimensat(AT_FDCWD, P("lf"), t2, AT_SYMLINK_NOFOLLOW));
        times("times f after NOFOLLOW", P("f"));
        struct stat st;
        MUST(lstat(P("lf"), &st));
        printf("symlink mtime is 1500000000: %s\n", st.st_mtim.tv_sec == 1500000000 ? "yes" : "no");
        val("utimensat dangling", utimensat(AT_FDCWD, P("dangling"), t, 0));
        val("utimensat missing", utimensat(AT_FDCWD, P("missing"), t, 0));
    }

    /* Directory times. */
    {
        struct timespec t[2] = {{1600000000, 0}, {1600000000, 0}};
        val("utimensat dir", utimensat(AT_FDCWD, P("d"), t, 0));
        times("times d", P("d"));
        make_file(P("d/new"), "");
        struct stat st;
        MUST(stat(P("d"), &st));
        printf("creating entry changed dir mtime: %s\n", st.st_mtim.tv_sec != 1600000000 ? "yes" : "no");
    }

    /* Invalid nanoseconds. */
    {
        struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
        val("utimensat bad nsec", utimensat(AT_FDCWD, P("f"), bad, 0));
    }
    return 0;
}
