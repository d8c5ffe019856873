// Small file tool for tests. Each command prints what it did, or on failure
// "error: <call> <path>: errno=<n> (<name>)" and exits 1.
//   read PATH          print the file's contents
//   write PATH TEXT    create or truncate PATH and write TEXT
//   append PATH TEXT   append TEXT
//   mkdir PATH         create a directory
//   ls PATH            list entry names, sorted, one per line
//   rm PATH            unlink a file
#include <dirent.h>
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

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: files read|write|append|mkdir|ls|rm PATH [TEXT]\n");
        return 2;
    }
    const char *cmd = argv[1], *path = argv[2];
    if (!strcmp(cmd, "read")) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) return fail("open", path);
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
        if (n < 0) return fail("read", path);
        close(fd);
        return 0;
    }
    if (!strcmp(cmd, "write") || !strcmp(cmd, "append")) {
        if (argc < 4) return 2;
        int flags = O_WRONLY | O_CREAT | (!strcmp(cmd, "write") ? O_TRUNC : O_APPEND);
        int fd = open(path, flags, 0644);
        if (fd < 0) return fail("open", path);
        size_t len = strlen(argv[3]);
        if (write(fd, argv[3], len) != (ssize_t)len) return fail("write", path);
        if (close(fd) != 0) return fail("close", path);
        printf("wrote %zu bytes to %s\n", len, path);
        return 0;
    }
    if (!strcmp(cmd, "mkdir")) {
        if (mkdir(path, 0755) != 0) return fail("mkdir", path);
        printf("created %s\n", path);
        return 0;
    }
    if (!strcmp(cmd, "rm")) {
        if (unlink(path) != 0) return fail("unlink", path);
        printf("removed %s\n", path);
        return 0;
    }
    if (!strcmp(cmd, "ls")) {
        DIR *d = opendir(path);
        if (!d) return fail("opendir", path);
        char *names[1024];
        size_t count = 0;
        struct dirent *ent;
        while ((ent = readdir(d)) && count < 1024) {
            if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
            names[count++] = strdup(ent->d_name);
        }
        closedir(d);
        qsort(names, count, sizeof names[0], cmp);
        for (size_t i = 0; i < count; i++) printf("%s\n", names[i]);
        return 0;
    }
    fprintf(stderr, "unknown command %s\n", cmd);
    return 2;
}
