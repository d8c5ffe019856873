/* rename() in all its shapes, unlink of an open file, hard links. */
#define SEED seed
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void exists(const char *what, const char *path) {
    struct stat st;
    int rc = lstat(path, &st);
    int e = errno;
    if (rc == 0)
        printf("%s: %s\n", what, S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : "other");
    else
        printf("%s: %s\n", what, e == ENOENT ? "absent" : errno_name(e));
}

static void nlink(const char *what, const char *path) {
    struct stat st;
    int rc = stat(path, &st);
    if (rc < 0)
        val(what, rc);
    else
        printf("%s: %lld\n", what, (long long)st.st_nlink);
}

/* The starting files (in a read-only lower layer on the layered backend). */
static void seed(void) {
    make_file(P("a"), "AAA");
    make_file(P("c"), "CCCCC");
    MUST(mkdir(P("d1"), 0755));
    make_file(P("d1/f"), "in d1");
    MUST(mkdir(P("empty"), 0755));
    MUST(mkdir(P("full"), 0755));
    make_file(P("full/g"), "g");
    make_file(P("file"), "file");
    make_file(P("h1"), "one");
}

int main(int argc, char **argv) {
    char buf[64];
    ssize_t n;
    init(&argc, &argv);

    /* Files. */
    val("rename a -> b", rename(P("a"), P("b")));
    exists("a after rename", P("a"));
    show_file("read b", P("b"));
    val("rename b -> c (replace)", rename(P("b"), P("c")));
    exists("b after replace", P("b"));
    show_file("read c", P("c"));
    val("rename c -> c (same)", rename(P("c"), P("c")));
    show_file("read c after self rename", P("c"));
    val("rename missing", rename(P("missing"), P("x")));
    val("rename into missing dir", rename(P("c"), P("nodir/c")));
    val("rename through file", rename(P("c"), P("c/x")));
    val("rename file with trailing slash", rename(P("c/"), P("d")));
    val("rename file to trailing slash", rename(P("c"), P("d/")));
    exists("d after failed renames", P("d"));

    /* Directories. */
    val("rename dir d1 -> d2", rename(P("d1"), P("d2")));
    exists("d1 after rename", P("d1"));
    show_file("read d2/f", P("d2/f"));
    val("rename dir over empty dir", rename(P("d2"), P("empty")));
    exists("d2 after", P("d2"));
    show_file("read empty/f", P("empty/f"));
    val("rename dir over non-empty dir", rename(P("empty"), P("full")));
    show_file("read full/g", P("full/g"));
    val("rename file over dir", rename(P("file"), P("full")));
    val("rename dir over file", rename(P("full"), P("file")));
    val("rename dir into own subdir", rename(P("full"), P("full/sub")));
    MUST(mkdir(P("full/inner"), 0755));
    val("rename dir into own nested subdir", rename(P("full"), P("full/inner/x")));
    val("rename dir with trailing slash", rename(P("full/"), P("full2/")));
    exists("full2 after", P("full2"));
    val("rename dir into sibling", rename(P("full2"), P("empty/moved")));
    exists("empty/moved after", P("empty/moved"));
    show_file("read empty/moved/g", P("empty/moved/g"));
    val("rename dir to .", rename(P("empty/moved"), P("empty/.")));
    val("rename .. away", rename(P("empty/.."), P("x")));
    val("rename scratch root", rename(P(""), P("x")));

    /* Open files survive rename and unlink. */
    int fd = open(P("file"), O_RDWR);
    MUST(fd);
    val("rename open file", rename(P("file"), P("file2")));
    n = read(fd, buf, 4);
    show_bytes("read via fd after rename", buf, n);
    val("unlink open file", unlink(P("file2")));
    exists("file2 after unlink", P("file2"));
    val("write via fd after unlink", write(fd, "+more", 5));
    n = pread(fd, buf, sizeof buf, 0);
    show_bytes("pread via fd after unlink", buf, n);
    struct stat st;
    MUST(fstat(fd, &st));
    printf("fstat after unlink: size=%lld nlink=%lld\n", (long long)st.st_size,
           (long long)st.st_nlink);
    val("close", close(fd));
    exists("file2 after close", P("file2"));

    /* Hard links. */
    nlink("nlink before link", P("h1"));
    val("link h1 -> h2", link(P("h1"), P("h2")));
    nlink("nlink h1 after link", P("h1"));
    nlink("nlink h2 after link", P("h2"));
    {
        struct stat s1, s2;
        MUST(stat(P("h1"), &s1));
        MUST(stat(P("h2"), &s2));
        printf("ino equal: %s\n", s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev ? "yes" : "no");
    }
    fd = open(P("h2"), O_WRONLY | O_APPEND);
    MUST(fd);
    val("append via h2", write(fd, "+two", 4));
    MUST(close(fd));
    show_file("read via h1", P("h1"));
    val("link existing target", link(P("h1"), P("h2")));
    val("link missing source", link(P("missing"), P("h3")));
    val("link dir", link(P("empty"), P("dirlink")));
    val("link into missing dir", link(P("h1"), P("nodir/h")));
    val("rename h1 -> h2 (same inode)", rename(P("h1"), P("h2")));
    exists("h1 after same-inode rename", P("h1"));
    exists("h2 after same-inode rename", P("h2"));
    val("unlink h1", unlink(P("h1")));
    nlink("nlink h2 after unlink h1", P("h2"));
    show_file("read h2", P("h2"));
    return 0;
}
