/* symlink, readlink, following and not following links, loops, dangling
 * links, links escaping the scratch directory. */
#define SEED seed
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void show_link(const char *what, const char *path) {
    char buf[256];
    ssize_t n = readlink(path, buf, sizeof buf);
    show_bytes(what, buf, n);
}

static const char *type_of(mode_t m) {
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

static void types(const char *what, const char *path) {
    struct stat st, lst;
    int rs = stat(path, &st);
    int es = errno;
    int rl = lstat(path, &lst);
    int el = errno;
    printf("%s: stat=%s lstat=%s\n", what, rs == 0 ? type_of(st.st_mode) : errno_name(es),
           rl == 0 ? type_of(lst.st_mode) : errno_name(el));
}

static void try_open(const char *what, const char *path, int flags) {
    char buf[64];
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        ok(what, fd);
        return;
    }
    if ((flags & O_ACCMODE) == O_RDONLY && !(flags & O_DIRECTORY)) {
        ssize_t n = read(fd, buf, sizeof buf);
        show_bytes(what, buf, n);
    } else {
        ok(what, fd);
    }
    close(fd);
}

/* The starting files (in a read-only lower layer on the layered backend). */
static void seed(void) {
    make_file(P("target.txt"), "target data");
    MUST(mkdir(P("dir"), 0755));
    make_file(P("dir/inner.txt"), "inner");
    make_file(P("dir/other.txt"), "other");
}

int main(int argc, char **argv) {
    char abs_target[512];
    init(&argc, &argv);


    /* Relative symlinks. */
    val("symlink rel", symlink("target.txt", P("rel")));
    show_link("readlink rel", P("rel"));
    try_open("open rel", P("rel"), O_RDONLY);
    types("types rel", P("rel"));
    types("types target.txt", P("target.txt"));
    val("symlink rel into parent", symlink("../target.txt", P("dir/up")));
    try_open("open dir/up", P("dir/up"), O_RDONLY);
    val("symlink existing name", symlink("target.txt", P("rel")));
    val("symlink in missing dir", symlink("target.txt", P("nodir/l")));
    val("symlink empty target", symlink("", P("emptylink")));

    /* Absolute symlink into the scratch directory. */
    snprintf(abs_target, sizeof abs_target, "%s/target.txt", scratch);
    val("symlink abs", symlink(abs_target, P("abs")));
    {
        char buf[512];
        ssize_t n = readlink(P("abs"), buf, sizeof buf);
        printf("readlink abs equals target: %s\n",
               n == (ssize_t)strlen(abs_target) && memcmp(buf, abs_target, n) == 0 ? "yes" : "no");
    }
    try_open("open abs", P("abs"), O_RDONLY);
    types("types abs", P("abs"));

    /* readlink details. */
    {
        char small[4];
        ssize_t n = readlink(P("rel"), small, sizeof small);
        show_bytes("readlink into 4-byte buffer", small, n);
    }
    show_link("readlink regular file", P("target.txt"));
    show_link("readlink dir", P("dir"));
    show_link("readlink missing", P("missing"));

    /* O_NOFOLLOW */
    try_open("open rel O_NOFOLLOW", P("rel"), O_RDONLY | O_NOFOLLOW);
    try_open("open target O_NOFOLLOW", P("target.txt"), O_RDONLY | O_NOFOLLOW);
    try_open("open rel O_CREAT|O_EXCL", P("rel"), O_WRONLY | O_CREAT | O_EXCL);

    /* Loops. */
    val("symlink loop a->b", symlink("loop_b", P("loop_a")));
    val("symlink loop b->a", symlink("loop_a", P("loop_b")));
    try_open("open loop", P("loop_a"), O_RDONLY);
    types("types loop", P("loop_a"));
    val("symlink self", symlink("self", P("self")));
    try_open("open self", P("self"), O_RDONLY);
    try_open("open through loop as dir", P("loop_a/x"), O_RDONLY);

    /* Dangling. */
    val("symlink dangling", symlink("nothing-here", P("dangling")));
    try_open("open dangling", P("dangling"), O_RDONLY);
    types("types dangling", P("dangling"));
    show_link("readlink dangling", P("dangling"));
    try_open("open dangling O_CREAT", P("dangling"), O_WRONLY | O_CREAT);
    types("types dangling after O_CREAT", P("dangling"));

    /* Symlink to a directory. */
    val("symlink to dir", symlink("dir", P("dirlink")));
    types("types dirlink", P("dirlink"));
    try_open("open dirlink/inner.txt", P("dirlink/inner.txt"), O_RDONLY);
    try_open("open dirlink O_DIRECTORY", P("dirlink"), O_RDONLY | O_DIRECTORY);
    try_open("open dirlink O_DIRECTORY|O_NOFOLLOW", P("dirlink"),
             O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    types("types dirlink/", P("dirlink/"));
    {
        char *names[16];
        int n = 0;
        DIR *d = opendir(P("dirlink"));
        if (!d) {
            ok("opendir dirlink", -1);
        } else {
            struct dirent *e;
            while ((e = readdir(d)) != NULL && n < 16)
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                    names[n++] = strdup(e->d_name);
            closedir(d);
            qsort(names, n, sizeof names[0], cmp_str);
            printf("list dirlink:");
            for (int i = 0; i < n; i++) {
                printf(" %s", names[i]);
                free(names[i]);
            }
            putchar('\n');
        }
    }
    val("rmdir dirlink", rmdir(P("dirlink")));
    val("unlink dirlink/", unlink(P("dirlink/")));
    val("mkdir over symlink", mkdir(P("dirlink"), 0755));
    val("unlink dirlink", unlink(P("dirlink")));
    types("types dir after unlink dirlink", P("dir"));

    /* Unlink and rename symlinks: the target stays. */
    val("unlink rel", unlink(P("rel")));
    types("types rel after unlink", P("rel"));
    show_file("read target after unlink rel", P("target.txt"));
    val("symlink rel2", symlink("target.txt", P("rel2")));
    val("rename symlink", rename(P("rel2"), P("rel3")));
    show_link("readlink renamed", P("rel3"));
    val("link to symlink", link(P("rel3"), P("hard_to_link")));
    types("types hard_to_link", P("hard_to_link"));

    /* Escaping the scratch directory: only success or failure is printed. */
    val("symlink escape", symlink("../../../../../../../../etc/passwd", P("escape")));
    int fd = open(P("escape"), O_RDONLY);
    printf("open escape succeeded: %s\n", fd >= 0 ? "yes" : "no");
    if (fd >= 0)
        close(fd);
    val("symlink escape dir", symlink("../../../../../../../..", P("escdir")));
    fd = open(P("escdir/etc/passwd"), O_RDONLY);
    printf("open escdir/etc/passwd succeeded: %s\n", fd >= 0 ? "yes" : "no");
    if (fd >= 0)
        close(fd);
    val("symlink absolute outside", symlink("/etc/passwd", P("absout")));
    fd = open(P("absout"), O_RDONLY);
    printf("open absout succeeded: %s\n", fd >= 0 ? "yes" : "no");
    if (fd >= 0)
        close(fd);
    fd = open(P("../../../../../../etc/passwd"), O_RDONLY);
    printf("open ../ path outside succeeded: %s\n", fd >= 0 ? "yes" : "no");
    if (fd >= 0)
        close(fd);
    return 0;
}
