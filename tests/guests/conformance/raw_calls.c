/* Raw WASI preview1 calls that libc wrappers do not reach, or reach only partly:
 * fd_advise, fd_allocate, fd_datasync, fd_sync, fd_fdstat_get/set_flags,
 * fd_fdstat_set_rights, fd_renumber, fd_tell, fd_prestat_get/dir_name,
 * clock_res_get, random_get, sched_yield, poll_oneoff, proc_raise, sock_*.
 * Prints each call's errno by name (0 = success). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>
#include "check.h"

/* proc_raise is in preview1 but not in this wasi-libc's headers. */
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_raise")))
extern uint16_t raw_proc_raise(uint32_t sig);

static void show(const char *what, __wasi_errno_t e) {
    if (e == 0) printf("%s: ok\n", what);
    else printf("%s: %s\n", what, errno_name(e));
}

int main(int argc, char **argv) {
    init(&argc, &argv);
    char path[512];
    snprintf(path, sizeof path, "%s/raw.txt", scratch);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { printf("FATAL open %s\n", path); return 1; }
    MUST(write(fd, "0123456789", 10));

    show("fd_advise normal", __wasi_fd_advise(fd, 0, 10, __WASI_ADVICE_NORMAL));
    show("fd_advise bad fd", __wasi_fd_advise(99, 0, 10, __WASI_ADVICE_NORMAL));
    show("fd_allocate", __wasi_fd_allocate(fd, 0, 20));
    show("fd_allocate bad fd", __wasi_fd_allocate(99, 0, 20));
    show("fd_datasync", __wasi_fd_datasync(fd));
    show("fd_sync", __wasi_fd_sync(fd));
    show("fd_sync bad fd", __wasi_fd_sync(99));

    __wasi_filesize_t pos = 0;
    show("fd_tell", __wasi_fd_tell(fd, &pos));
    printf("fd_tell position: %llu\n", (unsigned long long)pos);
    show("fd_tell stdin", __wasi_fd_tell(0, &pos));

    __wasi_fdstat_t st;
    show("fd_fdstat_get file", __wasi_fd_fdstat_get(fd, &st));
    printf("file filetype=%d flags=%d read=%d write=%d\n", st.fs_filetype, st.fs_flags,
           (st.fs_rights_base & __WASI_RIGHTS_FD_READ) != 0, (st.fs_rights_base & __WASI_RIGHTS_FD_WRITE) != 0);
    show("fd_fdstat_set_flags append", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
    show("fd_fdstat_get again", __wasi_fd_fdstat_get(fd, &st));
    printf("flags after append: %d\n", st.fs_flags);
    show("fd_fdstat_set_flags sync", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_SYNC));
    show("fd_fdstat_set_flags clear", __wasi_fd_fdstat_set_flags(fd, 0));

    int pre = 3;
    __wasi_prestat_t prestat;
    show("fd_prestat_get 3", __wasi_fd_prestat_get(pre, &prestat));
    char name[2];
    show("fd_prestat_dir_name tiny buffer", __wasi_fd_prestat_dir_name(pre, (uint8_t *)name, 0));
    show("fd_prestat_get file", __wasi_fd_prestat_get(fd, &prestat));
    show("fd_prestat_get bad", __wasi_fd_prestat_get(99, &prestat));

    int fd2 = open(path, O_RDONLY);
    MUST(fd2);
    show("fd_renumber onto open fd", __wasi_fd_renumber(fd2, fd));
    char buf[4] = {0};
    ssize_t n = read(fd, buf, 3);
    printf("read through renumbered fd: %zd %.3s\n", n, buf);
    show("fd_renumber from closed fd", __wasi_fd_renumber(fd2, fd));
    show("fd_renumber onto bad fd", __wasi_fd_renumber(fd, 98));

    __wasi_timestamp_t res = 0;
    show("clock_res_get realtime", __wasi_clock_res_get(__WASI_CLOCKID_REALTIME, &res));
    printf("realtime resolution positive: %s\n", res > 0 ? "yes" : "no");
    show("clock_res_get monotonic", __wasi_clock_res_get(__WASI_CLOCKID_MONOTONIC, &res));

    unsigned char a[32] = {0}, b[32] = {0};
    show("random_get", __wasi_random_get(a, sizeof a));
    show("random_get again", __wasi_random_get(b, sizeof b));
    printf("random differs: %s\n", memcmp(a, b, sizeof a) ? "yes" : "no");
    show("sched_yield", __wasi_sched_yield());

    /* poll_oneoff: a 1 ms relative clock only. */
    __wasi_subscription_t sub;
    memset(&sub, 0, sizeof sub);
    sub.userdata = 42;
    sub.u.tag = __WASI_EVENTTYPE_CLOCK;
    sub.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    sub.u.u.clock.timeout = 1000000;
    __wasi_event_t ev;
    __wasi_size_t nevents = 0;
    show("poll_oneoff clock", __wasi_poll_oneoff(&sub, &ev, 1, &nevents));
    printf("poll events=%u userdata=%llu type=%d error=%d\n", (unsigned)nevents, (unsigned long long)ev.userdata, ev.type, ev.error);
    show("poll_oneoff none", __wasi_poll_oneoff(&sub, &ev, 0, &nevents));

    show("proc_raise", raw_proc_raise(15 /* SIGTERM */));

    __wasi_fd_t accepted;
    show("sock_accept stdin", __wasi_sock_accept(0, 0, &accepted));
    show("sock_shutdown stdout", __wasi_sock_shutdown(1, __WASI_SDFLAGS_WR));
    show("sock_shutdown bad fd", __wasi_sock_shutdown(99, __WASI_SDFLAGS_WR));
    show("sock_shutdown preopen", __wasi_sock_shutdown(3, __WASI_SDFLAGS_WR));
    show("sock_shutdown file", __wasi_sock_shutdown(fd, __WASI_SDFLAGS_WR));
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
    __wasi_size_t got;
    __wasi_roflags_t roflags;
    show("sock_recv stdin", __wasi_sock_recv(0, &iov, 1, 0, &got, &roflags));
    __wasi_ciovec_t ciov = {(const uint8_t *)"x", 1};
    show("sock_send stdout", __wasi_sock_send(1, &ciov, 1, 0, &got));

    /* Narrowing rights: Capsule drops them (widening is ENOTCAPABLE); the reference
     * answers ENOTSUP to every fd_fdstat_set_rights. */
    int rw = open(path, O_RDWR);
    MUST(rw);
    MUST(__wasi_fd_fdstat_get(rw, &st) == 0 ? 0 : -1);
    __wasi_rights_t base = st.fs_rights_base, inheriting = st.fs_rights_inheriting;
    show("fd_fdstat_set_rights drop write", __wasi_fd_fdstat_set_rights(rw, base & ~__WASI_RIGHTS_FD_WRITE, inheriting));
    ssize_t wrote = write(rw, "z", 1);
    if (wrote < 0) printf("write after dropping FD_WRITE: %s\n", errno_name(errno));
    else printf("write after dropping FD_WRITE: %zd\n", wrote);
    show("fd_fdstat_set_rights widen again", __wasi_fd_fdstat_set_rights(rw, base, inheriting));
    MUST(close(rw));

    show("fd_close", __wasi_fd_close(fd));
    show("fd_close again", __wasi_fd_close(fd));
    return 0;
}
