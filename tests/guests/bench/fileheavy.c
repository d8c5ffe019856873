// A file-heavy workload for `scripts/bench.sh fs` (not a test): run over a tree made by
// scripts/bench_fs.py, under Capsule (--layer tree.tar) and under `wasmtime run --dir`.
//   fileheavy TREE WORK [all|read|list|write]
// 1. stat, open, read and close every file of TREE/dNNN/fNNN (10,000 small files)
// 2. list TREE/big (5,000 entries) 20 times
// 3. create and write 1,000 files in WORK, then stat and delete each
// Prints counts and a checksum so both runs can be checked for the same result, and on
// stderr the time each phase's loop took (`loop-ms read=.. list=.. write=..`, the
// monotonic clock), so the loop can be compared without the program's start and exit.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fileheavy TREE WORK\n");
        return 2;
    }
    const char *tree = argv[1], *work = argv[2];
    const char *phase = argc > 3 ? argv[3] : "all";
    int all = !strcmp(phase, "all");
    int do_read = all || !strcmp(phase, "read"), do_list = all || !strcmp(phase, "list"), do_write = all || !strcmp(phase, "write");
    char path[512], buf[4096];
    unsigned long files = 0, listed = 0;
    unsigned int sum = 0; // 32 bits on every target, so the wasm and native runs agree
    double t0 = now_ms();
    for (int d = 0; d < 100 && do_read; d++) {
        for (int f = 0; f < 100; f++) {
            snprintf(path, sizeof path, "%s/d%03d/f%03d", tree, d, f);
            struct stat st;
            if (stat(path, &st) != 0) { perror(path); return 1; }
            int fd = open(path, O_RDONLY);
            if (fd < 0) { perror(path); return 1; }
            ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0)
                for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)buf[i];
            close(fd);
            files++;
        }
    }
    double t1 = now_ms();
    for (int round = 0; round < 20 && do_list; round++) {
        snprintf(path, sizeof path, "%s/big", tree);
        DIR *dir = opendir(path);
        if (!dir) { perror(path); return 1; }
        struct dirent *e;
        while ((e = readdir(dir))) listed++;
        closedir(dir);
    }
    double t2 = now_ms();
    mkdir(work, 0755);
    for (int i = 0; i < 1000 && do_write; i++) {
        snprintf(path, sizeof path, "%s/new%04d", work, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { perror(path); return 1; }
        if (write(fd, path, strlen(path)) < 0) { perror(path); return 1; }
        close(fd);
    }
    for (int i = 0; i < 1000 && do_write; i++) {
        snprintf(path, sizeof path, "%s/new%04d", work, i);
        struct stat st;
        if (stat(path, &st) != 0) { perror(path); return 1; }
        if (st.st_size != (off_t)strlen(path)) { fprintf(stderr, "%s: wrong size\n", path); return 1; }
        if (unlink(path) != 0) { perror(path); return 1; }
    }
    double t3 = now_ms();
    printf("files=%lu listed=%lu checksum=%x\n", files, listed, sum);
    fprintf(stderr, "loop-ms read=%.3f list=%.3f write=%.3f\n", t1 - t0, t2 - t1, t3 - t2);
    return 0;
}
