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
    fprintf(stderr, "service: bad arguments\n");
    return 2;
}
