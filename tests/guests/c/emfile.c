// At the descriptor limit, creating a file must fail with EMFILE and leave nothing
// behind: the limit is checked before any side effect. argv[1] is a writable dir.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char keep[256], fresh[256];
    snprintf(keep, sizeof keep, "%s/keep", argv[1]);
    snprintf(fresh, sizeof fresh, "%s/fresh", argv[1]);
    int fd = open(keep, O_CREAT | O_WRONLY, 0644);
    if (fd < 0) { printf("setup: %s\n", strerror(errno)); return 1; }
    int opened = 1;
    while (open(keep, O_RDONLY) >= 0) opened++;
    printf("limit reached after %d opens: %s\n", opened, errno == EMFILE ? "EMFILE" : strerror(errno));
    int r = open(fresh, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    printf("create at the limit: %s\n", r < 0 && errno == EMFILE ? "EMFILE" : "opened");
    return 0;
}
