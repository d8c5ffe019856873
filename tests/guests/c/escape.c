// A hostile guest: tries to reach files outside its container through `..`,
// symlinks (absolute, climbing, chained), a symlink swapped by the host while the
// guest reads through it, and creations through all of these. Every attempt prints
//   ATTEMPT <what>: blocked (<errno name>)
//   ATTEMPT <what>: OPENED <first 64 bytes, non-printable bytes as '.'>
//   ATTEMPT <what>: CREATED
// and the program exits 0 whatever happened: the host side decides what is a leak.
//
//   dotdot DIR [HOSTPATH]        `..` out of DIR and out of /, then HOSTPATH as seen
//                                 through DIR/../../..
//   symlinks DIR HOSTPATH        symlinks in DIR to HOSTPATH (absolute, climbing,
//                                 chained, through a directory link), read and written
//   loop DIR N                   N times read DIR/swing/secret; print LEAK <content>
//                                 unless it is "benign" (or cannot be opened)
//   write-outside DIR            create files through `..` and DIR/out -> /
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../errno_name.h"

static void print_bytes(const char *buf, ssize_t n) {
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        putchar(c >= 0x20 && c < 0x7f ? c : '.');
    }
}

// Reads the first 64 bytes of an open descriptor and reports them.
static void report_open(const char *what, int fd) {
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    printf("ATTEMPT %s: OPENED ", what);
    if (n < 0) {
        printf("(read failed: %s)", errno_name(errno));
    } else {
        print_bytes(buf, n);
    }
    putchar('\n');
    close(fd);
}

static void blocked(const char *what) {
    printf("ATTEMPT %s: blocked (%s)\n", what, errno_name(errno));
}

// Opens PATH (relative to DIRFD, or through wasi-libc's preopens when DIRFD < 0)
// for reading and reports what was read.
static void try_read_at(int dirfd, const char *what, const char *path) {
    int fd = dirfd >= 0 ? openat(dirfd, path, O_RDONLY) : open(path, O_RDONLY);
    if (fd < 0) {
        blocked(what);
        return;
    }
    report_open(what, fd);
}

static void try_read(const char *what, const char *path) { try_read_at(-1, what, path); }

// Creates (or truncates) PATH and writes a marker into it.
static void try_create(const char *what, const char *path) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) {
        blocked(what);
        return;
    }
    const char marker[] = "written by the escape guest";
    ssize_t n = write(fd, marker, sizeof marker - 1);
    close(fd);
    if (n < 0) {
        printf("ATTEMPT %s: CREATED (write failed: %s)\n", what, errno_name(errno));
    } else {
        printf("ATTEMPT %s: CREATED\n", what);
    }
}

// Opens an existing PATH for writing (no O_CREAT) and tries to overwrite it.
static void try_overwrite(const char *what, const char *path) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0) {
        blocked(what);
        return;
    }
    const char marker[] = "PWNED";
    ssize_t n = write(fd, marker, sizeof marker - 1);
    close(fd);
    printf("ATTEMPT %s: OPENED for writing (wrote %zd bytes)\n", what, n);
}

static void make_link(const char *target, const char *link) {
    // A guest may not make a link with an absolute target (EPERM, as wasmtime): the
    // test plants those on the host, so the one there is kept and followed.
    if (target[0] != '/')
        unlink(link);
    if (symlink(target, link) != 0) {
        printf("SYMLINK %s -> %s: failed (%s)\n", link, target, errno_name(errno));
    } else {
        printf("SYMLINK %s -> %s: made\n", link, target);
    }
}

static char *cat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) {
        perror("malloc");
        exit(2);
    }
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static char *cat3(const char *a, const char *b, const char *c) {
    char *ab = cat(a, b);
    char *abc = cat(ab, c);
    free(ab);
    return abc;
}

// Prints the names in PATH in readdir order.
static void list(const char *label, const char *path) {
    DIR *d = opendir(path);
    printf("%s %s:", label, path);
    if (!d) {
        printf(" (opendir failed: %s)\n", errno_name(errno));
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        printf(" %s", ent->d_name);
    }
    closedir(d);
    putchar('\n');
}

static int dotdot(int argc, char **argv) {
    const char *dir = argv[2];
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dirfd < 0) {
        printf("cannot open %s: %s\n", dir, errno_name(errno));
        return 0;
    }
    try_read_at(dirfd, "openat(DIR, ../../../../../../etc/passwd)", "../../../../../../etc/passwd");
    char *via_dir = cat(dir, "/../../../../../../etc/passwd");
    try_read("DIR/../../../../../../etc/passwd", via_dir);
    try_read("/../../../etc/passwd", "/../../../etc/passwd");
    try_read("/etc/passwd", "/etc/passwd");
    list("LIST", "/");
    char *root_via_dir = cat(dir, "/../../../../../..");
    list("LIST", root_via_dir);
    if (argc > 3) {
        const char *host = argv[3];
        char *climb = cat3(dir, "/../../../../../../..", host);
        try_read("DIR/../../../../../../../HOSTPATH", climb);
        try_read_at(dirfd, "openat(DIR, ../../../../../../../HOSTPATH)",
                    cat("../../../../../../..", host));
        try_read("HOSTPATH", host);
    }
    close(dirfd);
    return 0;
}

static int symlinks(char **argv) {
    const char *dir = argv[2], *host = argv[3];
    const char *climb = "../../../../../../../..";

    // Controls: links that stay inside the volume work, so a "blocked" below is the
    // sandbox at work and not a guest that cannot make or follow links at all.
    char *inside = cat(dir, "/inside.txt");
    try_create("control: create DIR/inside.txt", inside);
    char *good_abs = cat(dir, "/good-abs"), *good_rel = cat(dir, "/good-rel");
    make_link(inside, good_abs);
    make_link("inside.txt", good_rel);
    try_read("control: link -> DIR/inside.txt", good_abs);
    try_read("control: link -> inside.txt", good_rel);

    // An absolute link straight at the host path.
    char *abs_link = cat(dir, "/abs");
    make_link(host, abs_link);
    try_read("link -> HOSTPATH", abs_link);

    // A relative link climbing out of the mount.
    char *rel_target = cat(climb, host);
    char *rel_link = cat(dir, "/rel");
    make_link(rel_target, rel_link);
    try_read("link -> ../../../../../../../../HOSTPATH", rel_link);

    // A chain: chain1 -> chain2 -> chain3 -> climbing target.
    char *c1 = cat(dir, "/chain1"), *c2 = cat(dir, "/chain2"), *c3 = cat(dir, "/chain3");
    make_link(rel_target, c3);
    make_link("chain3", c2);
    make_link("chain2", c1);
    try_read("chain1 -> chain2 -> chain3 -> ../../HOSTPATH", c1);
    // A chain mixing absolute and relative links: chainabs -> /DIR/chain1.
    char *cabs = cat(dir, "/chainabs");
    make_link(c1, cabs);
    try_read("chainabs -> DIR/chain1 -> ...", cabs);

    // A link to a directory above the mount, then the host path under it.
    char *up = cat(dir, "/up");
    make_link(climb, up);
    char *through_up = cat(up, host);
    try_read("up -> ../../../../../../../.. then up/HOSTPATH", through_up);
    list("LIST", up);
    // A link to the host's root directory.
    char *root = cat(dir, "/root");
    make_link("/", root);
    char *through_root = cat(root, host);
    try_read("root -> / then root/HOSTPATH", through_root);

    // A self loop and a two-link loop: must end (ELOOP), not hang.
    char *self = cat(dir, "/self");
    make_link("self", self);
    try_read("self -> self", self);
    char *ping = cat(dir, "/ping"), *pong = cat(dir, "/pong");
    make_link("pong", ping);
    make_link("ping", pong);
    try_read("ping -> pong -> ping", ping);

    // Writing through links that point outside: create a new file next to HOSTPATH,
    // and overwrite HOSTPATH itself.
    char *host_dir = strdup(host);
    char *slash = host_dir ? strrchr(host_dir, '/') : NULL;
    if (slash) *slash = '\0';
    char *planted_abs = cat(host_dir ? host_dir : "", "/planted-abs.txt");
    char *plant_abs = cat(dir, "/plant-abs");
    make_link(planted_abs, plant_abs);
    try_create("create through link -> HOSTDIR/planted-abs.txt", plant_abs);
    char *planted_rel = cat3(climb, host_dir ? host_dir : "", "/planted-rel.txt");
    char *plant_rel = cat(dir, "/plant-rel");
    make_link(planted_rel, plant_rel);
    try_create("create through link -> ../../HOSTDIR/planted-rel.txt", plant_rel);
    char *plant_up = cat3(up, host_dir ? host_dir : "", "/planted-up.txt");
    try_create("create up/HOSTDIR/planted-up.txt", plant_up);
    try_overwrite("overwrite through link -> HOSTPATH", abs_link);
    try_overwrite("overwrite through link -> ../../HOSTPATH", rel_link);
    try_overwrite("overwrite through chain1", c1);
    return 0;
}

static int loop(char **argv) {
    const char *dir = argv[2];
    long n = strtol(argv[3], NULL, 10);
    char *path = cat(dir, "/swing/secret");
    long opened = 0, failed = 0, leaks = 0;
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            failed++;
            continue;
        }
        opened++;
        char buf[128];
        ssize_t got = read(fd, buf, sizeof buf);
        close(fd);
        if (got < 0) {
            failed++;
            continue;
        }
        if (got != 6 || memcmp(buf, "benign", 6) != 0) {
            leaks++;
            printf("LEAK ");
            print_bytes(buf, got);
            putchar('\n');
        }
    }
    printf("stats opened=%ld failed=%ld leaks=%ld\n", opened, failed, leaks);
    printf("done %ld\n", n);
    return 0;
}

static int write_outside(char **argv) {
    const char *dir = argv[2];
    try_create("create /../outside.txt", "/../outside.txt");
    char *up2 = cat(dir, "/../../outside.txt");
    try_create("create DIR/../../outside.txt", up2);
    char *out = cat(dir, "/out");
    make_link("/", out);
    char *x = cat(dir, "/out/../../x");
    try_create("create DIR/out/../../x", x);
    // The host's layout: DIR is WORK/vol, so ../outside is WORK/outside on the host.
    char *outdir = cat(dir, "/outdir");
    make_link("../outside", outdir);
    char *planted = cat(outdir, "/planted.txt");
    try_create("create DIR/outdir/planted.txt (outdir -> ../outside)", planted);
    // What the container sees afterwards: where did the creations land?
    list("LIST", "/");
    list("LIST", dir);
    return 0;
}

/* Tries to exhaust the host: descriptors, path length, symlink depth, a big file in
 * the tmpfs. Prints where each limit stopped it. */
static int limits(const char *dir) {
    char path[8192];
    snprintf(path, sizeof path, "%s/fdfile", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { printf("FATAL create %s\n", path); return 1; }
    close(fd);
    static int fds[5000];
    int opened = 0, last_errno = 0;
    for (int i = 0; i < 5000; i++) {
        int f = open(path, O_RDONLY);
        if (f < 0) { last_errno = errno; break; }
        fds[opened++] = f;
    }
    printf("LIMIT descriptors: stopped after %s at %s\n", opened >= 1000 && opened < 1030 ? "about 1024" : "an unexpected count", errno_name(last_errno));
    for (int i = 0; i < opened; i++) close(fds[i]);

    memset(path, 'a', 5000);
    path[5000] = 0;
    printf("LIMIT long path: %s\n", open(path, O_RDONLY) < 0 ? errno_name(errno) : "opened");
    char name[300];
    memset(name, 'n', 299);
    name[299] = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    printf("LIMIT long name: %s\n", open(path, O_WRONLY | O_CREAT, 0644) < 0 ? errno_name(errno) : "created");

    /* A chain of 45 symlinks: link0 -> link1 -> ... -> link44 -> target. */
    snprintf(path, sizeof path, "%s/target", dir);
    close(open(path, O_WRONLY | O_CREAT, 0644));
    for (int i = 0; i < 45; i++) {
        char link[256], to[64];
        snprintf(link, sizeof link, "%s/link%d", dir, i);
        if (i == 44) snprintf(to, sizeof to, "target");
        else snprintf(to, sizeof to, "link%d", i + 1);
        symlink(to, link);
    }
    snprintf(path, sizeof path, "%s/link30", dir);
    printf("LIMIT 15 links: %s\n", open(path, O_RDONLY) < 0 ? errno_name(errno) : "opened");
    snprintf(path, sizeof path, "%s/link0", dir);
    printf("LIMIT 45 links: %s\n", open(path, O_RDONLY) < 0 ? errno_name(errno) : "opened");

    /* Fill the 64 MiB /tmp tmpfs. */
    fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static char chunk[1 << 20];
    long written = 0;
    int fill_errno = 0;
    for (int i = 0; i < 100; i++) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n < 0) { fill_errno = errno; break; }
        written += n;
    }
    printf("LIMIT tmpfs: %ld MiB then %s\n", written >> 20, errno_name(fill_errno));
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "limits")) return limits(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "dotdot")) return dotdot(argc, argv);
    if (argc >= 4 && !strcmp(argv[1], "symlinks")) return symlinks(argv);
    if (argc >= 4 && !strcmp(argv[1], "loop")) return loop(argv);
    if (argc >= 3 && !strcmp(argv[1], "write-outside")) return write_outside(argv);
    fprintf(stderr, "usage: escape dotdot DIR [HOSTPATH] | symlinks DIR HOSTPATH | loop DIR N | "
                    "write-outside DIR\n");
    return 2;
}
