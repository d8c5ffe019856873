// Drives N guest calls of each kind on files in one directory, for a test that counts
// the host's system calls per guest call (tests/tests/integration/hostcalls.rs).
//   hostcalls DIR N
// Creates DIR (and parents), then in phases, each announced on stdout by a line
// "@phase NAME" written with one write(2) so the host's write shows where it starts:
//   create  open(O_CREAT|O_WRONLY|O_TRUNC), write, close N new files
//   stat    stat each file (following symlinks, as stat(2) does)
//   lstat   lstat each file
//   open    open, read and close each file
//   unlink  unlink each file
// then "@phase end", and "ok N" when every call did what it should.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../errno_name.h"

static int fail(const char *call, const char *path) {
    int e = errno;
    printf("error: %s %s: errno=%d (%s)\n", call, path, e, errno_name(e));
    return 1;
}

static void phase(const char *name) {
    char line[64];
    int n = snprintf(line, sizeof line, "@phase %s\n", name);
    if (write(1, line, (size_t)n) != n) exit(3);
}

static int mkdirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return fail("mkdir", path);
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return fail("mkdir", path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: hostcalls DIR N\n");
        return 2;
    }
    char dir[256], path[512], buf[64];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    int n = atoi(argv[2]);
    if (mkdirs(dir)) return 1;
    phase("create");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%05d", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return fail("open", path);
        if (write(fd, path, strlen(path)) != (ssize_t)strlen(path)) return fail("write", path);
        if (close(fd) != 0) return fail("close", path);
    }
    phase("stat");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%05d", dir, i);
        struct stat st;
        if (stat(path, &st) != 0) return fail("stat", path);
        if (!S_ISREG(st.st_mode) || st.st_size != (off_t)strlen(path)) {
            printf("error: stat %s: wrong size %lld\n", path, (long long)st.st_size);
            return 1;
        }
    }
    phase("lstat");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%05d", dir, i);
        struct stat st;
        if (lstat(path, &st) != 0) return fail("lstat", path);
    }
    phase("open");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%05d", dir, i);
        int fd = open(path, O_RDONLY);
        if (fd < 0) return fail("open", path);
        ssize_t got = read(fd, buf, sizeof buf);
        if (got != (ssize_t)strlen(path) || memcmp(buf, path, (size_t)got) != 0) {
            printf("error: read %s: got %zd bytes\n", path, got);
            return 1;
        }
        close(fd);
    }
    phase("unlink");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%05d", dir, i);
        if (unlink(path) != 0) return fail("unlink", path);
    }
    phase("end");
    struct stat st;
    snprintf(path, sizeof path, "%s/f%05d", dir, 0);
    if (n > 0 && stat(path, &st) == 0) {
        printf("error: %s still exists after unlink\n", path);
        return 1;
    }
    printf("ok %d\n", n);
    return 0;
}
