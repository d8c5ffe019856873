// A guest that takes what it is given, for the resource-limit tests.
//   hog mem MB_STEP [exit]  malloc MB_STEP MiB at a time (touching every page) until
//                           malloc fails; print how far it got, then abort() (trap),
//                           or exit(3) with "exit"
//   hog fill FILE [again]   append 64 KiB blocks to FILE until a write fails; print
//                           how many bytes were written and the error; with
//                           "again", then remove FILE and do it once more
//   hog open FILE           open FILE read-only until open fails; print how many
//                           opens succeeded and the error
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case ENOSPC: return "ENOSPC";
    case EMFILE: return "EMFILE";
    case ENOMEM: return "ENOMEM";
    default: return strerror(e);
    }
}

// Every block is kept on a list the compiler must believe is read, so that the
// allocations are not optimised away.
void *volatile kept;

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "mem")) {
        long step = strtol(argv[2], NULL, 10) << 20;
        long total = 0;
        for (;;) {
            char *p = malloc(step);
            if (!p) break;
            memset(p, 0xab, step);
            *(void **)p = kept;
            kept = p;
            total += step;
        }
        printf("malloc failed after %ld MiB\n", total >> 20);
        fflush(stdout);
        if (argc >= 4 && !strcmp(argv[3], "exit")) exit(3);
        abort();
    }
    if (argc >= 3 && !strcmp(argv[1], "fill")) {
        int rounds = argc >= 4 && !strcmp(argv[3], "again") ? 2 : 1;
        static char block[64 << 10];
        memset(block, 'x', sizeof block);
        for (int round = 0; round < rounds; round++) {
            if (round > 0 && unlink(argv[2])) { printf("unlink: %s\n", name(errno)); return 1; }
            int fd = open(argv[2], O_CREAT | O_WRONLY | O_APPEND, 0644);
            if (fd < 0) { printf("open: %s\n", name(errno)); return 1; }
            long long total = 0;
            for (;;) {
                ssize_t n = write(fd, block, sizeof block);
                if (n < 0) break;
                total += n;
            }
            printf("wrote %lld bytes: %s\n", total, name(errno));
            close(fd);
        }
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "open")) {
        int opened = 0;
        while (open(argv[2], O_RDONLY) >= 0) opened++;
        printf("opened %d: %s\n", opened, name(errno));
        return 0;
    }
    fprintf(stderr, "usage: hog mem MB [exit] | fill FILE [again] | open FILE\n");
    return 2;
}
