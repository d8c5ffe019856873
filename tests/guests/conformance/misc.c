/* Non-filesystem calls: args, environ, clocks, sleeping, randomness,
 * sched_yield, fd errors and renumbering, poll. */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>
#include <wasi/libc.h>

extern char **environ;

static long long ns(struct timespec t) {
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long mono(void) {
    struct timespec t;
    MUST(clock_gettime(CLOCK_MONOTONIC, &t));
    return ns(t);
}

int main(int argc, char **argv) {
    init(&argc, &argv);

    /* Arguments: argv[0] is the runtime's choice, so only its presence. */
    printf("argc: %d\n", argc);
    printf("argv[0] present: %s\n", argv[0] != NULL ? "yes" : "no");
    for (int i = 1; i < argc; i++)
        printf("argv[%d]: %s\n", i, argv[i]);
    printf("argv[argc] is NULL: %s\n", argv[argc] == NULL ? "yes" : "no");

    /* Environment, sorted. */
    {
        int n = 0;
        while (environ && environ[n])
            n++;
        char **copy = malloc((n + 1) * sizeof *copy);
        MUST(copy ? 0 : -1);
        for (int i = 0; i < n; i++)
            copy[i] = environ[i];
        qsort(copy, n, sizeof *copy, cmp_str);
        printf("environ count: %d\n", n);
        for (int i = 0; i < n; i++)
            printf("environ: %s\n", copy[i]);
        free(copy);
        const char *missing = getenv("CAPSULE_CONFORMANCE_UNSET_VARIABLE");
        printf("getenv unset: %s\n", missing ? missing : "(null)");
    }

    /* Clocks. */
    {
        struct timespec rt, m1, m2, res;
        val("clock_gettime REALTIME", clock_gettime(CLOCK_REALTIME, &rt));
        printf("realtime after 2020: %s\n", rt.tv_sec > 1577836800 ? "yes" : "no");
        printf("realtime nsec in range: %s\n", rt.tv_nsec >= 0 && rt.tv_nsec < 1000000000 ? "yes" : "no");
        val("clock_gettime MONOTONIC", clock_gettime(CLOCK_MONOTONIC, &m1));
        val("clock_gettime MONOTONIC again", clock_gettime(CLOCK_MONOTONIC, &m2));
        printf("monotonic not backwards: %s\n", ns(m2) >= ns(m1) ? "yes" : "no");
        val("clock_getres REALTIME", clock_getres(CLOCK_REALTIME, &res));
        printf("realtime resolution > 0: %s\n", ns(res) > 0 ? "yes" : "no");
        val("clock_getres MONOTONIC", clock_getres(CLOCK_MONOTONIC, &res));
        printf("monotonic resolution > 0: %s\n", ns(res) > 0 ? "yes" : "no");
        printf("monotonic resolution <= 1ms: %s\n", ns(res) <= 1000000 ? "yes" : "no");
        time_t t = time(NULL);
        printf("time() after 2020: %s\n", t > 1577836800 ? "yes" : "no");
        /* Raw clock ids 2 and 3 (process/thread CPU time). */
        __wasi_timestamp_t ts;
        __wasi_errno_t e = __wasi_clock_time_get(__WASI_CLOCKID_PROCESS_CPUTIME_ID, 1, &ts);
        printf("raw clock_time_get PROCESS_CPUTIME: %s\n", e ? errno_name(e) : "ok");
        e = __wasi_clock_time_get(__WASI_CLOCKID_THREAD_CPUTIME_ID, 1, &ts);
        printf("raw clock_time_get THREAD_CPUTIME: %s\n", e ? errno_name(e) : "ok");
        e = __wasi_clock_res_get(__WASI_CLOCKID_PROCESS_CPUTIME_ID, &ts);
        printf("raw clock_res_get PROCESS_CPUTIME: %s\n", e ? errno_name(e) : "ok");
    }

    /* Sleeping. */
    {
        long long before = mono();
        struct timespec req = {0, 10000000};
        val("nanosleep 10ms", nanosleep(&req, NULL));
        printf("monotonic advanced >= 10ms: %s\n", mono() - before >= 10000000 ? "yes" : "no");
        before = mono();
        struct timespec zero = {0, 0};
        val("nanosleep 0", nanosleep(&zero, NULL));
        struct timespec bad = {0, 1000000000};
        val("nanosleep bad nsec", nanosleep(&bad, NULL));
        before = mono();
        val("usleep 10000", usleep(10000));
        printf("usleep advanced >= 10ms: %s\n", mono() - before >= 10000000 ? "yes" : "no");
        before = mono();
        val("poll no fds 10ms", poll(NULL, 0, 10));
        printf("poll advanced >= 10ms: %s\n", mono() - before >= 10000000 ? "yes" : "no");
        val("poll no fds 0ms", poll(NULL, 0, 0));
    }

    /* Randomness: never print the bytes. */
    {
        unsigned char a[32], b[32], big[257];
        val("getentropy 32", getentropy(a, sizeof a));
        val("getentropy 32 again", getentropy(b, sizeof b));
        printf("random differs: %s\n", memcmp(a, b, sizeof a) != 0 ? "yes" : "no");
        val("getentropy 256", getentropy(big, 256));
        val("getentropy 257", getentropy(big, 257));
        val("getentropy 0", getentropy(big, 0));
        __wasi_errno_t e = __wasi_random_get(big, sizeof big);
        printf("raw random_get 257: %s\n", e ? errno_name(e) : "ok");
    }

    val("sched_yield", sched_yield());

    /* Bad descriptors. */
    val("close 99", close(99));
    val("write 99", write(99, "x", 1));
    val("read 99", read(99, (char[1]){0}, 1));
    val("close -1", close(-1));
    val("fcntl 99 F_GETFL", fcntl(99, F_GETFL));

    /* Renumbering (there is no dup/dup2 in WASI): open a and b, move a's
     * descriptor onto b's number, then b reads a's contents. */
    {
        char buf[16];
        make_file(P("a"), "from a");
        make_file(P("b"), "from b");
        int fa = open(P("a"), O_RDONLY), fb = open(P("b"), O_RDONLY);
        MUST(fa);
        MUST(fb);
        val("renumber a onto b", __wasilibc_fd_renumber(fa, fb));
        ssize_t n = read(fb, buf, sizeof buf);
        show_bytes("read via b's number", buf, n);
        val("read via a's old number", read(fa, buf, sizeof buf));
        val("renumber onto unused fd", __wasilibc_fd_renumber(fb, 90));
        val("renumber from unused fd", __wasilibc_fd_renumber(91, fb));
        val("renumber onto itself", __wasilibc_fd_renumber(fb, fb));
        n = pread(fb, buf, sizeof buf, 0);
        show_bytes("pread after self renumber", buf, n);
        val("close b", close(fb));
    }

    /* Writing to standard output through the raw call. */
    {
        fflush(stdout);
        __wasi_ciovec_t iov = {(const uint8_t *)"raw fd_write to stdout\n", 23};
        __wasi_size_t written = 0;
        __wasi_errno_t e = __wasi_fd_write(1, &iov, 1, &written);
        printf("raw fd_write: %s written=%lu\n", e ? errno_name(e) : "ok", (unsigned long)written);
        e = __wasi_fd_write(99, &iov, 1, &written);
        printf("raw fd_write 99: %s\n", e ? errno_name(e) : "ok");
    }
    printf("done\n");
    return 0;
}
