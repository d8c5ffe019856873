/* Rights and open flags through raw preview1 calls, not through wasi-libc (which
 * always passes its own rights and lookup flags): path_open with zero rights (with
 * and without O_CREAT), O_TRUNC with read-only rights, O_CREAT|O_DIRECTORY,
 * fd_fdstat_get of directories, files opened read/write/append, the preopen and
 * stdio (base and inheriting rights), and narrowing a directory's rights with
 * fd_fdstat_set_rights before using the path_* calls it no longer allows.
 * Prints each call's errno by name (ok = success) and rights in hex. */
#define SEED seed
#include "check.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static void seed(void) {
    make_file(P("data.txt"), "0123456789");
    make_file(P("ro.txt"), "read only");
    MUST(mkdir(P("dir"), 0755));
    make_file(P("dir/inner.txt"), "inner");
    MUST(mkdir(P("nar"), 0755));
    make_file(P("nar/f"), "narrow");
    MUST(mkdir(P("nar/d"), 0755));
    MUST(symlink("f", P("nar/l")));
}

/* Closes a descriptor this program opened; must succeed. */
static void cl(long fd) {
    MUST(__wasi_fd_close((__wasi_fd_t)fd) == 0 ? 0 : -1);
}

static void show(const char *what, __wasi_errno_t e) {
    if (e == 0)
        printf("%s: ok\n", what);
    else
        printf("%s: %s\n", what, errno_name(e));
}

/* "what: type=T flags=F base=0x... inheriting=0x..." or the errno. */
static void fdstat(const char *what, __wasi_fd_t fd) {
    __wasi_fdstat_t st;
    __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
    if (e != 0) {
        show(what, e);
        return;
    }
    printf("%s: type=%d flags=%d base=0x%08llx inheriting=0x%08llx\n", what,
           st.fs_filetype, st.fs_flags, (unsigned long long)st.fs_rights_base,
           (unsigned long long)st.fs_rights_inheriting);
}

/* The scratch directory as a descriptor of its own (opened through libc, so from
 * whichever preopen covers it). */
static __wasi_fd_t dir_fd(const char *name) {
    int fd = open(P(name), O_RDONLY | O_DIRECTORY);
    MUST(fd);
    return (__wasi_fd_t)fd;
}

/* path_open relative to `dir`; prints the errno and returns the fd or -1. */
static long raw_open(const char *what, __wasi_fd_t dir, const char *path, __wasi_oflags_t oflags,
                     __wasi_rights_t base, __wasi_fdflags_t fdflags) {
    __wasi_fd_t fd = 0;
    __wasi_errno_t e = __wasi_path_open(dir, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, path, oflags, base,
                                        base, fdflags, &fd);
    show(what, e);
    return e == 0 ? (long)fd : -1;
}

static void try_read(const char *what, long fd) {
    char buf[16];
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_fd_read((__wasi_fd_t)fd, &iov, 1, &n);
    if (e != 0)
        show(what, e);
    else
        show_bytes(what, buf, (long)n);
}

static void try_write(const char *what, long fd, const char *text) {
    __wasi_ciovec_t iov = {(const uint8_t *)text, strlen(text)};
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_fd_write((__wasi_fd_t)fd, &iov, 1, &n);
    if (e != 0)
        show(what, e);
    else
        printf("%s: %u\n", what, (unsigned)n);
}

#define R(x) __WASI_RIGHTS_##x

static void open_flags(__wasi_fd_t s) {
    long fd;
    /* Zero rights: the reference opens for neither reading nor writing. */
    fd = raw_open("path_open zero rights", s, "data.txt", 0, 0, 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        try_read("  read", fd);
        try_write("  write", fd, "x");
        cl(fd);
    }
    fd = raw_open("path_open zero rights creat", s, "zero-new.txt", __WASI_OFLAGS_CREAT, 0, 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        try_write("  write", fd, "x");
        cl(fd);
    }
    fd = raw_open("path_open zero rights directory", s, "dir", __WASI_OFLAGS_DIRECTORY, 0, 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        long inner = raw_open("  path_open inner through it", fd, "inner.txt", 0, R(FD_READ), 0);
        if (inner >= 0) {
            try_read("  read inner", inner);
            cl(inner);
        }
        cl(fd);
    }
    /* O_TRUNC with read-only rights. */
    fd = raw_open("path_open trunc read-only", s, "ro.txt", __WASI_OFLAGS_TRUNC, R(FD_READ), 0);
    if (fd >= 0) {
        try_read("  read", fd);
        cl(fd);
    }
    show_file("ro.txt after", P("ro.txt"));
    /* O_CREAT|O_DIRECTORY, on a new name and on an existing directory. */
    fd = raw_open("path_open creat|directory new", s, "cd-new", __WASI_OFLAGS_CREAT | __WASI_OFLAGS_DIRECTORY,
                  R(FD_READ), 0);
    if (fd >= 0)
        cl(fd);
    fd = raw_open("path_open creat|directory existing dir", s, "dir",
                  __WASI_OFLAGS_CREAT | __WASI_OFLAGS_DIRECTORY, R(FD_READ), 0);
    if (fd >= 0)
        cl(fd);
    fd = raw_open("path_open creat|directory existing file", s, "data.txt",
                  __WASI_OFLAGS_CREAT | __WASI_OFLAGS_DIRECTORY, R(FD_READ), 0);
    if (fd >= 0)
        cl(fd);
    /* Rights the object cannot have: write rights on a directory. */
    fd = raw_open("path_open dir with FD_WRITE", s, "dir", __WASI_OFLAGS_DIRECTORY, R(FD_WRITE), 0);
    if (fd >= 0)
        cl(fd);
}

static void fdstats(__wasi_fd_t s) {
    fdstat("fdstat stdin", 0);
    fdstat("fdstat stdout", 1);
    fdstat("fdstat stderr", 2);
    fdstat("fdstat preopen", scratch_preopen(NULL));
    fdstat("fdstat scratch opened by libc", s);
    long fd = raw_open("path_open dir read", s, "dir", __WASI_OFLAGS_DIRECTORY,
                       R(FD_READ) | R(FD_READDIR) | R(PATH_OPEN), 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        cl(fd);
    }
    fd = raw_open("path_open dir all rights", s, "dir", __WASI_OFLAGS_DIRECTORY, (((__wasi_rights_t)1 << 30) - 1) & ~R(FD_WRITE), 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        cl(fd);
    }
    fd = raw_open("path_open file read", s, "data.txt", 0, R(FD_READ), 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        cl(fd);
    }
    fd = raw_open("path_open file write", s, "data.txt", 0, R(FD_WRITE), 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        try_read("  read", fd);
        cl(fd);
    }
    fd = raw_open("path_open file read+write", s, "data.txt", 0, R(FD_READ) | R(FD_WRITE), 0);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        cl(fd);
    }
    fd = raw_open("path_open file append", s, "data.txt", 0, R(FD_WRITE), __WASI_FDFLAGS_APPEND);
    if (fd >= 0) {
        fdstat("  fdstat", fd);
        try_write("  append", fd, "AB");
        cl(fd);
    }
    show_file("data.txt after append", P("data.txt"));
}

/* One path_* call per right a directory can hold: narrow a fresh descriptor of
 * nar/ by that one right, make the call, and undo what it did with the scratch
 * descriptor (so the tree does not depend on the answer). */
struct narrow_case {
    const char *name;
    __wasi_rights_t right;
    __wasi_rights_t needs; /* every right the call needs, `right` among them */
};

static const struct narrow_case cases[] = {
    {"path_create_directory", R(PATH_CREATE_DIRECTORY), R(PATH_CREATE_DIRECTORY)},
    {"path_open creat", R(PATH_CREATE_FILE), R(PATH_CREATE_FILE) | R(PATH_OPEN)},
    {"path_open", R(PATH_OPEN), R(PATH_OPEN)},
    {"path_filestat_get", R(PATH_FILESTAT_GET), R(PATH_FILESTAT_GET)},
    {"path_filestat_set_times", R(PATH_FILESTAT_SET_TIMES), R(PATH_FILESTAT_SET_TIMES)},
    {"path_link source", R(PATH_LINK_SOURCE), R(PATH_LINK_SOURCE)},
    {"path_link target", R(PATH_LINK_TARGET), R(PATH_LINK_TARGET)},
    {"path_readlink", R(PATH_READLINK), R(PATH_READLINK)},
    {"path_remove_directory", R(PATH_REMOVE_DIRECTORY), R(PATH_REMOVE_DIRECTORY)},
    {"path_rename source", R(PATH_RENAME_SOURCE), R(PATH_RENAME_SOURCE)},
    {"path_rename target", R(PATH_RENAME_TARGET), R(PATH_RENAME_TARGET)},
    {"path_symlink", R(PATH_SYMLINK), R(PATH_SYMLINK)},
    {"path_unlink_file", R(PATH_UNLINK_FILE), R(PATH_UNLINK_FILE)},
};

static __wasi_errno_t narrow_call(int i, __wasi_fd_t d, __wasi_fd_t s) {
    __wasi_fd_t fd = 0;
    __wasi_filestat_t st;
    char buf[16];
    __wasi_size_t n;
    __wasi_errno_t e;
    switch (i) {
    case 0:
        e = __wasi_path_create_directory(d, "newdir");
        if (e == 0)
            MUST(rmdir(P("nar/newdir")));
        return e;
    case 1:
        e = __wasi_path_open(d, 0, "newfile", __WASI_OFLAGS_CREAT, R(FD_READ) | R(FD_WRITE), 0, 0, &fd);
        if (e == 0) {
            cl(fd);
            MUST(unlink(P("nar/newfile")));
        }
        return e;
    case 2:
        e = __wasi_path_open(d, 0, "f", 0, R(FD_READ), 0, 0, &fd);
        if (e == 0)
            cl(fd);
        return e;
    case 3:
        return __wasi_path_filestat_get(d, 0, "f", &st);
    case 4:
        return __wasi_path_filestat_set_times(d, 0, "f", 1000000000ULL, 1000000000ULL,
                                              __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM);
    case 5:
        e = __wasi_path_link(d, 0, "f", s, "nar/linked");
        if (e == 0)
            MUST(unlink(P("nar/linked")));
        return e;
    case 6:
        e = __wasi_path_link(s, 0, "nar/f", d, "linked");
        if (e == 0)
            MUST(unlink(P("nar/linked")));
        return e;
    case 7:
        return __wasi_path_readlink(d, "l", (uint8_t *)buf, sizeof buf, &n);
    case 8:
        e = __wasi_path_remove_directory(d, "d");
        if (e == 0)
            MUST(mkdir(P("nar/d"), 0755));
        return e;
    case 9:
        e = __wasi_path_rename(d, "f", s, "nar/f2");
        if (e == 0)
            MUST(rename(P("nar/f2"), P("nar/f")));
        return e;
    case 10:
        e = __wasi_path_rename(s, "nar/f", d, "f3");
        if (e == 0)
            MUST(rename(P("nar/f3"), P("nar/f")));
        return e;
    case 11:
        e = __wasi_path_symlink("f", d, "l2");
        if (e == 0)
            MUST(unlink(P("nar/l2")));
        return e;
    default:
        e = __wasi_path_unlink_file(d, "f");
        if (e == 0)
            make_file(P("nar/f"), "narrow");
        return e;
    }
}

static void narrowing(__wasi_fd_t s) {
    int ncases = (int)(sizeof cases / sizeof cases[0]);
    int narrowed = 0;
    char refused[1024] = "", others[1024] = "", allowed_after[1024] = "";
    for (int i = 0; i < ncases; i++) {
        __wasi_fd_t d = dir_fd("nar");
        __wasi_fdstat_t st;
        MUST(__wasi_fd_fdstat_get(d, &st) == 0 ? 0 : -1);
        if (__wasi_fd_fdstat_set_rights(d, st.fs_rights_base & ~cases[i].right, st.fs_rights_inheriting) == 0)
            narrowed++;
        __wasi_errno_t e = narrow_call(i, d, s);
        char *list = e == __WASI_ERRNO_NOTCAPABLE ? refused : e == 0 ? NULL : others;
        if (list) {
            strcat(list, " ");
            strcat(list, cases[i].name);
            if (list == others) {
                strcat(list, "=");
                strcat(list, errno_name(e));
            }
        }
        /* Every other call still works on the narrowed descriptor. */
        for (int j = 0; j < ncases; j++) {
            if (j == i || (cases[j].needs & cases[i].right) != 0)
                continue;
            __wasi_errno_t f = narrow_call(j, d, s);
            if (f != 0) {
                strcat(allowed_after, " ");
                strcat(allowed_after, cases[j].name);
                strcat(allowed_after, "=");
                strcat(allowed_after, errno_name(f));
                strcat(allowed_after, "/without ");
                strcat(allowed_after, cases[i].name);
            }
        }
        cl(d);
    }
    printf("narrowing: fd_fdstat_set_rights ok for %d of %d\n", narrowed, ncases);
    printf("narrowing: refused with ENOTCAPABLE:%s\n", *refused ? refused : " none");
    printf("narrowing: other errors:%s\n", *others ? others : " none");
    printf("narrowing: failures of the calls still allowed:%s\n", *allowed_after ? allowed_after : " none");
    show_file("nar/f after", P("nar/f"));
}

int main(int argc, char **argv) {
    init(&argc, &argv);
    __wasi_fd_t s = dir_fd("");
    open_flags(s);
    fdstats(s);
    narrowing(s);
    MUST(close((int)s));
    return 0;
}
