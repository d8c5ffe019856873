/* lseek, sparse writes, pread/pwrite, ftruncate, with fstat sizes. */
#define SEED seed
#include "check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int fd;

static void size(const char *when) {
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc < 0)
        val(when, rc);
    else
        printf("size %s: %lld\n", when, (long long)st.st_size);
}

static void pos(const char *when) {
    printf("position %s: %lld\n", when, (long long)lseek(fd, 0, SEEK_CUR));
}

static void hex(const char *what, const unsigned char *b, long n) {
    int e = errno;
    if (n < 0) {
        printf("%s: %ld %s\n", what, n, errno_name(e));
        return;
    }
    printf("%s %ld:", what, n);
    for (long i = 0; i < n; i++)
        printf(" %02x", b[i]);
    putchar('\n');
}

/* The starting files (in a read-only lower layer on the layered backend). */
static void seed(void) {
    make_file(P("t.txt"), "abcdefgh");
    MUST(mkdir(P("d"), 0755));
}

int main(int argc, char **argv) {
    unsigned char buf[64];
    long n;
    init(&argc, &argv);

    fd = open(P("f.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    MUST(fd);
    size("new");
    pos("new");
    val("write 10", write(fd, "0123456789", 10));
    size("after write");

    /* Whence variants. */
    val("lseek SET 2", lseek(fd, 2, SEEK_SET));
    n = read(fd, buf, 3);
    show_bytes("read 3", (char *)buf, n);
    val("lseek CUR +1", lseek(fd, 1, SEEK_CUR));
    n = read(fd, buf, 2);
    show_bytes("read 2", (char *)buf, n);
    val("lseek CUR -4", lseek(fd, -4, SEEK_CUR));
    n = read(fd, buf, 1);
    show_bytes("read 1", (char *)buf, n);
    val("lseek END 0", lseek(fd, 0, SEEK_END));
    val("read at end", read(fd, buf, 4));
    val("lseek END -3", lseek(fd, -3, SEEK_END));
    n = read(fd, buf, 10);
    show_bytes("read to end", (char *)buf, n);
    val("lseek CUR 0", lseek(fd, 0, SEEK_CUR));

    /* Invalid seeks leave the position alone. */
    val("lseek SET -1", lseek(fd, -1, SEEK_SET));
    val("lseek CUR -100", lseek(fd, -100, SEEK_CUR));
    val("lseek END -11", lseek(fd, -11, SEEK_END));
    /* An unknown whence is not tested: wasmtime traps (invalid enum value)
     * instead of returning EINVAL. */
    pos("after bad seeks");

    /* Seek past the end: size unchanged until a write. */
    val("lseek SET 16", lseek(fd, 16, SEEK_SET));
    size("after seek past end");
    val("read past end", read(fd, buf, 4));
    val("write AB at 16", write(fd, "AB", 2));
    size("after sparse write");
    val("lseek SET 8", lseek(fd, 8, SEEK_SET));
    n = read(fd, buf, sizeof buf);
    hex("read gap", buf, n);

    /* pread/pwrite do not move the position. */
    val("lseek SET 3", lseek(fd, 3, SEEK_SET));
    n = pread(fd, buf, 4, 5);
    show_bytes("pread 4 at 5", (char *)buf, n);
    pos("after pread");
    val("pwrite 2 at 0", pwrite(fd, "xy", 2, 0));
    pos("after pwrite");
    n = read(fd, buf, 2);
    show_bytes("read 2 at 3", (char *)buf, n);
    val("pwrite 3 at 20 (extends)", pwrite(fd, "END", 3, 20));
    size("after pwrite extend");
    pos("after pwrite extend");
    n = pread(fd, buf, sizeof buf, 0);
    hex("pread whole", buf, n);
    val("pread past end", pread(fd, buf, 4, 100));
    val("pread negative offset", pread(fd, buf, 4, -1));
    val("pwrite negative offset", pwrite(fd, "z", 1, -1));

    /* ftruncate shrink and grow. */
    val("lseek SET 12", lseek(fd, 12, SEEK_SET));
    val("ftruncate 6", ftruncate(fd, 6));
    size("after shrink");
    pos("after shrink");
    val("read after shrink", read(fd, buf, 4));
    n = pread(fd, buf, sizeof buf, 0);
    show_bytes("pread after shrink", (char *)buf, n);
    val("ftruncate 12", ftruncate(fd, 12));
    size("after grow");
    n = pread(fd, buf, sizeof buf, 0);
    hex("pread after grow", buf, n);
    val("ftruncate -1", ftruncate(fd, -1));
    size("after bad ftruncate");
    val("ftruncate 0", ftruncate(fd, 0));
    size("after truncate 0");
    pos("after truncate 0");
    val("write at 12 after truncate", write(fd, "Z", 1));
    size("after write");
    n = pread(fd, buf, sizeof buf, 0);
    hex("pread final", buf, n);
    val("close", close(fd));

    /* truncate() by path. */
    val("truncate path 3", truncate(P("t.txt"), 3));
    show_file("read truncated", P("t.txt"));
    val("truncate missing", truncate(P("missing"), 3));

    /* Read-only descriptor: seek works, write fails. */
    fd = open(P("t.txt"), O_RDONLY);
    MUST(fd);
    val("rdonly lseek END", lseek(fd, 0, SEEK_END));
    val("rdonly pwrite", pwrite(fd, "q", 1, 0));
    val("close", close(fd));

    /* Seeking a directory. */
    fd = open(P("d"), O_RDONLY | O_DIRECTORY);
    MUST(fd);
    val("lseek on dir", lseek(fd, 0, SEEK_SET));
    val("pread on dir", pread(fd, buf, 1, 0));
    val("close", close(fd));

    val("lseek closed fd", lseek(99, 0, SEEK_SET));
    return 0;
}
