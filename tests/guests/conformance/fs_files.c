/* open() flags and the errors of path resolution for regular files. */
#define SEED seed
#include "check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The starting files (in a read-only lower layer on the layered backend). */
static void seed(void) {
    make_file(P("log.txt"), "start\n");
    make_file(P("ro.txt"), "readonly");
    MUST(mkdir(P("dir1"), 0755));
}

int main(int argc, char **argv) {
    char buf[64];
    int fd;
    ssize_t n;
    init(&argc, &argv);

    /* O_CREAT on a missing file, then O_CREAT again on the existing one. */
    fd = open(P("a.txt"), O_WRONLY | O_CREAT, 0644);
    ok("open creat new", fd);
    val("write 5", write(fd, "hello", 5));
    val("close", close(fd));
    fd = open(P("a.txt"), O_WRONLY | O_CREAT, 0644);
    ok("open creat existing", fd);
    val("close", close(fd));
    show_file("read back", P("a.txt"));

    /* O_EXCL */
    fd = open(P("a.txt"), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ok("open excl existing", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("excl.txt"), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ok("open excl new", fd);
    if (fd >= 0)
        close(fd);

    /* O_TRUNC */
    fd = open(P("a.txt"), O_WRONLY | O_TRUNC);
    ok("open trunc", fd);
    val("write 3", write(fd, "abc", 3));
    val("close", close(fd));
    show_file("read after trunc", P("a.txt"));
    fd = open(P("a.txt"), O_RDWR | O_TRUNC);
    ok("open rdwr trunc", fd);
    struct stat st;
    MUST(fstat(fd, &st));
    printf("size after trunc: %lld\n", (long long)st.st_size);
    val("close", close(fd));

    /* O_APPEND: both writes land at the end even after seeking to 0. */
    fd = open(P("log.txt"), O_WRONLY | O_APPEND);
    ok("open append", fd);
    val("append 1", write(fd, "one\n", 4));
    val("lseek 0", lseek(fd, 0, SEEK_SET));
    val("append 2", write(fd, "two\n", 4));
    val("position after append", lseek(fd, 0, SEEK_CUR));
    val("close", close(fd));
    show_file("read appended", P("log.txt"));
    fd = open(P("log.txt"), O_RDWR | O_APPEND);
    ok("open rdwr append", fd);
    n = read(fd, buf, 5);
    show_bytes("read from start", buf, n);
    val("append 3", write(fd, "three\n", 6));
    val("close", close(fd));
    show_file("read appended again", P("log.txt"));
    val("fcntl getfl has O_APPEND",
        (fd = open(P("log.txt"), O_WRONLY | O_APPEND)) < 0
            ? -1
            : (fcntl(fd, F_GETFL) & O_APPEND) != 0);
    if (fd >= 0)
        close(fd);

    /* Access mode enforcement. */
    fd = open(P("ro.txt"), O_RDONLY);
    ok("open rdonly", fd);
    val("write on rdonly", write(fd, "x", 1));
    n = read(fd, buf, sizeof buf);
    show_bytes("read on rdonly", buf, n);
    val("ftruncate on rdonly", ftruncate(fd, 0));
    val("close", close(fd));
    fd = open(P("ro.txt"), O_WRONLY);
    ok("open wronly", fd);
    val("read on wronly", read(fd, buf, sizeof buf));
    val("write on wronly", write(fd, "W", 1));
    val("close", close(fd));
    show_file("read after wronly", P("ro.txt"));
    val("fcntl getfl accmode rdwr",
        (fd = open(P("ro.txt"), O_RDWR)) < 0 ? -1
                                             : (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    if (fd >= 0)
        close(fd);

    /* Directories. */
    fd = open(P("a.txt"), O_RDONLY | O_DIRECTORY);
    ok("open file O_DIRECTORY", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("dir1"), O_RDONLY | O_DIRECTORY);
    ok("open dir O_DIRECTORY", fd);
    if (fd >= 0) {
        val("read on dir fd", read(fd, buf, sizeof buf));
        close(fd);
    }
    fd = open(P("dir1"), O_RDONLY);
    ok("open dir rdonly", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("dir1"), O_WRONLY);
    ok("open dir wronly", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("dir1"), O_RDWR);
    ok("open dir rdwr", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("dir1"), O_WRONLY | O_CREAT, 0644);
    ok("open dir wronly creat", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("dir1/"), O_RDONLY);
    ok("open dir with trailing slash", fd);
    if (fd >= 0)
        close(fd);

    /* Path resolution errors. */
    fd = open(P("a.txt/"), O_RDONLY);
    ok("open file/ trailing slash", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("new.txt/"), O_WRONLY | O_CREAT, 0644);
    ok("open creat missing/ trailing slash", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("missing.txt"), O_RDONLY);
    ok("open missing", fd);
    fd = open(P("nodir/x.txt"), O_RDONLY);
    ok("open missing parent", fd);
    fd = open(P("nodir/x.txt"), O_WRONLY | O_CREAT, 0644);
    ok("open creat missing parent", fd);
    fd = open(P("a.txt/x"), O_RDONLY);
    ok("open through file", fd);
    fd = open(P("a.txt/x"), O_WRONLY | O_CREAT, 0644);
    ok("open creat through file", fd);
    fd = open(P("dir1/../a.txt"), O_RDONLY);
    ok("open dir/../file", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P("./a.txt"), O_RDONLY);
    ok("open ./file", fd);
    if (fd >= 0)
        close(fd);
    fd = open(P(""), O_RDONLY);
    ok("open scratch dir itself", fd);
    if (fd >= 0)
        close(fd);

    /* Name length: 255 bytes is the usual limit, 256 is too long. */
    char name[300];
    memset(name, 'n', 255);
    name[255] = '\0';
    fd = open(P(name), O_WRONLY | O_CREAT, 0644);
    ok("open creat 255-byte name", fd);
    if (fd >= 0) {
        close(fd);
        val("unlink 255-byte name", unlink(P(name)));
    }
    memset(name, 'n', 256);
    name[256] = '\0';
    fd = open(P(name), O_WRONLY | O_CREAT, 0644);
    ok("open creat 256-byte name", fd);
    if (fd >= 0)
        close(fd);

    /* Closed descriptors. */
    fd = open(P("a.txt"), O_RDONLY);
    MUST(fd);
    MUST(close(fd));
    val("read closed fd", read(fd, buf, 1));
    val("close closed fd", close(fd));
    return 0;
}
