// A stand-in for a long-running service, for the container lifecycle tests.
//   service tick N MS [CODE]  print "tick I" N times (N=0: forever), MS ms apart,
//                             then exit with CODE (default 0)
//   service spin              loop forever without calling the host
//   service sleep SECS        sleep in poll_oneoff, then print "awake"
//   service count FILE CODE   append a line to FILE, print how many lines it has,
//                             exit with CODE (restart policies count runs with it)
//   service cat               copy stdin to stdout
//   service write FILE TEXT   write TEXT to FILE
//   service rm PATH           remove a file
//   service env NAME          print the variable
//   service pwd               print the working directory
//   service exists PATH       exit 0 when PATH exists, else 1 (a health check)
//   service watch FILE MS     look for FILE every MS ms; once it is there, print
//                             "saw CONTENTS" and exit 0
//   service append FILE KB N  append N records of KB KiB to FILE, each one write() of
//                             a single byte value (the record's number plus the
//                             round's, mod 256), then truncate it and start another
//                             round, forever; prints "appending" once started
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: service tick|spin|sleep|count|cat|write|rm|env ...\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "tick") && argc >= 4) {
        long n = strtol(argv[2], NULL, 10), ms = strtol(argv[3], NULL, 10);
        for (long i = 1; n == 0 || i <= n; i++) {
            printf("tick %ld\n", i);
            fflush(stdout);
            if (i == 1) {
                fprintf(stderr, "started\n");
            }
            nap(ms);
        }
        return argc >= 5 ? (int)strtol(argv[4], NULL, 10) : 0;
    }
    if (!strcmp(mode, "spin")) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    if (!strcmp(mode, "sleep") && argc >= 3) {
        nap(strtol(argv[2], NULL, 10) * 1000);
        printf("awake\n");
        return 0;
    }
    if (!strcmp(mode, "count") && argc >= 4) {
        FILE *f = fopen(argv[2], "a");
        if (!f) { perror(argv[2]); return 3; }
        fputs("run\n", f);
        fclose(f);
        f = fopen(argv[2], "r");
        if (!f) { perror(argv[2]); return 3; }
        int lines = 0, c;
        while ((c = fgetc(f)) != EOF) lines += c == '\n';
        fclose(f);
        printf("runs %d\n", lines);
        return (int)strtol(argv[3], NULL, 10);
    }
    if (!strcmp(mode, "cat")) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
        return 0;
    }
    if (!strcmp(mode, "write") && argc >= 4) {
        FILE *f = fopen(argv[2], "w");
        if (!f) { perror(argv[2]); return 3; }
        fputs(argv[3], f);
        return fclose(f) ? 3 : 0;
    }
    if (!strcmp(mode, "rm") && argc >= 3) {
        if (unlink(argv[2])) { perror(argv[2]); return 3; }
        return 0;
    }
    if (!strcmp(mode, "env") && argc >= 3) {
        const char *v = getenv(argv[2]);
        printf("%s\n", v ? v : "(unset)");
        return 0;
    }
    if (!strcmp(mode, "pwd")) {
        char dir[4096];
        if (!getcwd(dir, sizeof dir)) { perror("getcwd"); return 3; }
        printf("%s\n", dir);
        return 0;
    }
    if (!strcmp(mode, "exists") && argc >= 3) {
        return access(argv[2], F_OK) == 0 ? 0 : 1;
    }
    if (!strcmp(mode, "watch") && argc >= 4) {
        long ms = strtol(argv[3], NULL, 10);
        printf("watching %s\n", argv[2]);
        fflush(stdout);
        for (;;) {
            FILE *f = fopen(argv[2], "r");
            if (f) {
                char buf[256] = {0};
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                while (n > 0 && buf[n - 1] == '\n') buf[--n] = 0;
                printf("saw %s\n", buf);
                return 0;
            }
            if (errno != ENOENT) { perror(argv[2]); return 3; }
            nap(ms);
        }
    }
    if (!strcmp(mode, "append") && argc >= 5) {
        size_t size = (size_t)strtol(argv[3], NULL, 10) * 1024;
        unsigned long records = strtoul(argv[4], NULL, 10);
        char *record = malloc(size);
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (!record || fd < 0) { perror(argv[2]); return 3; }
        printf("appending\n");
        fflush(stdout);
        for (unsigned long round = 0;; round++) {
            for (unsigned long i = 0; i < records; i++) {
                memset(record, (int)((round + i) % 256), size);
                if (write(fd, record, size) != (ssize_t)size) { perror("write"); return 3; }
            }
            if (ftruncate(fd, 0)) { perror("ftruncate"); return 3; }
        }
    }
    fprintf(stderr, "service: bad arguments\n");
    return 2;
}
