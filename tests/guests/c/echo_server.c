// An echo server over the listeners the host hands over (published ports), found the
// way systemd socket activation says: LISTEN_FDS, LISTEN_FDNAMES, and (WASI puts them
// after the preopened directories, not at 3) LISTEN_FDS_START.
//   echo_server [block]   accept one connection at a time (blocking), echo what it
//                         reads until the client closes; "quit" as a line ends the server
//   echo_server poll      non-blocking listener and connections, poll() over all of
//                         them: many clients at once
//   echo_server probe     print what the guest sees of its listeners and exit
//   echo_server nosock    the socket calls on descriptors that are not sockets, and
//                         poll over stdin and clocks (the same under any preview1 host)
//   echo_server pollstdin poll stdin with a 300 ms timeout until a line arrives:
//                         prints "clock" for each timeout, then "stdin: LINE"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>
#include <wasi/api.h>

static int first_fd(void) {
    const char *start = getenv("LISTEN_FDS_START");
    const char *n = getenv("LISTEN_FDS");
    if (!n || atoi(n) < 1) {
        fprintf(stderr, "echo_server: no LISTEN_FDS: publish a port (-p)\n");
        exit(3);
    }
    return start ? atoi(start) : 3;
}

static const char *err_name(int e) {
    switch (e) {
    case 0: return "OK";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTCONN: return "ENOTCONN";
    case ENOTSUP: return "ENOTSUP";
    case ENOTDIR: return "ENOTDIR";
    case EFAULT: return "EFAULT";
    default: return "other";
    }
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n < 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

// Echoes one connection until it closes; returns 1 when the client said "quit".
static int serve_blocking(int conn) {
    char buf[4096];
    int quit = 0;
    for (;;) {
        ssize_t n = recv(conn, buf, sizeof buf, 0);
        if (n <= 0) {
            break;
        }
        if (n >= 4 && !memcmp(buf, "quit", 4)) {
            quit = 1;
            break;
        }
        if (write_all(conn, buf, (size_t)n) < 0) {
            break;
        }
    }
    close(conn);
    return quit;
}

static int run_block(int lfd) {
    printf("listening on fd %d (%s)\n", lfd, getenv("LISTEN_FDNAMES"));
    fflush(stdout);
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int conn = accept(lfd, (struct sockaddr *)&addr, &len);
        if (conn < 0) {
            fprintf(stderr, "accept: %s\n", strerror(errno));
            return 1;
        }
        if (serve_blocking(conn)) {
            printf("bye\n");
            return 0;
        }
    }
}

#define MAX_CONNS 256

static int run_poll(int lfd) {
    if (fcntl(lfd, F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "fcntl: %s\n", strerror(errno));
        return 1;
    }
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int early = accept(lfd, (struct sockaddr *)&addr, &len);
    printf("non-blocking accept with no client: %s\n", early < 0 ? err_name(errno) : "a connection");
    printf("polling on fd %d (%s)\n", lfd, getenv("LISTEN_FDNAMES"));
    fflush(stdout);
    struct pollfd fds[MAX_CONNS + 1];
    int n = 1;
    fds[0].fd = lfd;
    fds[0].events = POLLIN;
    for (;;) {
        int ready = poll(fds, (nfds_t)n, 5000);
        if (ready < 0) {
            fprintf(stderr, "poll: %s\n", strerror(errno));
            return 1;
        }
        if (ready == 0) {
            printf("idle\n");
            fflush(stdout);
            continue;
        }
        for (int i = n - 1; i >= 1; i--) {
            if (!(fds[i].revents & (POLLIN | POLLHUP))) {
                continue;
            }
            char buf[4096];
            ssize_t got = recv(fds[i].fd, buf, sizeof buf, 0);
            if (got < 0 && errno == EAGAIN) {
                continue;
            }
            if (got > 0 && got >= 4 && !memcmp(buf, "quit", 4)) {
                printf("bye\n");
                return 0;
            }
            if (got <= 0 || write_all(fds[i].fd, buf, (size_t)got) < 0) {
                close(fds[i].fd);
                fds[i] = fds[n - 1];
                n--;
            }
        }
        if (fds[0].revents & POLLIN) {
            for (;;) {
                len = sizeof addr;
                int conn = accept4(lfd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK);
                if (conn < 0) {
                    break;
                }
                if (n > MAX_CONNS) {
                    close(conn);
                    continue;
                }
                fds[n].fd = conn;
                fds[n].events = POLLIN;
                fds[n].revents = 0;
                n++;
            }
        }
    }
}

static int run_probe(void) {
    printf("LISTEN_FDS=%s LISTEN_FDNAMES=%s LISTEN_FDS_START=%s\n", getenv("LISTEN_FDS"),
           getenv("LISTEN_FDNAMES"), getenv("LISTEN_FDS_START"));
    int lfd = first_fd();
    int count = atoi(getenv("LISTEN_FDS"));
    for (int fd = lfd; fd < lfd + count; fd++) {
        __wasi_fdstat_t st;
        __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
        __wasi_prestat_t pre;
        __wasi_errno_t pe = __wasi_fd_prestat_get(fd, &pre);
        __wasi_filestat_t fst;
        __wasi_errno_t fe = __wasi_fd_filestat_get(fd, &fst);
        struct stat sb;
        int is_sock = fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode);
        printf("fd %d: fdstat %s filetype %d flags %d rights %llx/%llx; prestat %s; filestat %s "
               "type %d size %llu; S_ISSOCK %d\n",
               fd, err_name(e), st.fs_filetype, st.fs_flags,
               (unsigned long long)st.fs_rights_base,
               (unsigned long long)st.fs_rights_inheriting, err_name(pe), err_name(fe),
               fst.filetype, (unsigned long long)fst.size, is_sock);
        // Reading a listener, and shutting it down, are refused.
        char c;
        ssize_t r = read(fd, &c, 1);
        printf("fd %d: read %s\n", fd, r < 0 ? err_name(errno) : "data");
        printf("fd %d: fcntl(O_APPEND) %s\n", fd,
               fcntl(fd, F_SETFL, O_APPEND) < 0 ? err_name(errno) : "OK");
    }
    // The directories were still found: the preopen scan went past nothing.
    DIR *root = opendir("/");
    printf("opendir /: %s\n", root ? "OK" : err_name(errno));
    if (root) {
        closedir(root);
    }
    FILE *f = fopen("/tmp/probe.txt", "w");
    printf("fopen /tmp/probe.txt: %s\n", f ? "OK" : err_name(errno));
    if (f) {
        fclose(f);
    }
    return 0;
}

static int run_nosock(void) {
    __wasi_fd_t out;
    printf("sock_accept(1): %s\n", err_name(__wasi_sock_accept(1, 0, &out)));
    printf("sock_accept(99): %s\n", err_name(__wasi_sock_accept(99, 0, &out)));
    char buf[8];
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
    __wasi_size_t n;
    __wasi_roflags_t ro;
    printf("sock_recv(0): %s\n", err_name(__wasi_sock_recv(0, &iov, 1, 0, &n, &ro)));
    __wasi_ciovec_t ciov = {(const uint8_t *)"x", 1};
    printf("sock_send(1): %s\n", err_name(__wasi_sock_send(1, &ciov, 1, 0, &n)));
    printf("sock_shutdown(2): %s\n", err_name(__wasi_sock_shutdown(2, __WASI_SDFLAGS_WR)));
    printf("sock_shutdown(99): %s\n", err_name(__wasi_sock_shutdown(99, __WASI_SDFLAGS_WR)));
    // stdin is at its end (empty): readable at once, before the clock.
    struct pollfd in = {0, POLLIN, 0};
    int ready = poll(&in, 1, 5000);
    printf("poll(stdin, 5s): %d %s\n", ready, (in.revents & POLLIN) ? "readable" : "-");
    // Only a clock: it fires.
    printf("poll(none, 10ms): %d\n", poll(NULL, 0, 10));
    return 0;
}

static int run_pollstdin(void) {
    for (int i = 0; i < 100; i++) {
        struct pollfd in = {0, POLLIN, 0};
        int ready = poll(&in, 1, 300);
        if (ready == 0) {
            printf("clock\n");
            fflush(stdout);
            continue;
        }
        char line[256];
        if (!fgets(line, sizeof line, stdin)) {
            printf("stdin: end\n");
            return 0;
        }
        printf("stdin: %s", line);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "block";
    if (!strcmp(mode, "nosock")) {
        return run_nosock();
    }
    if (!strcmp(mode, "pollstdin")) {
        return run_pollstdin();
    }
    if (!strcmp(mode, "probe")) {
        return run_probe();
    }
    int lfd = first_fd();
    if (!strcmp(mode, "poll")) {
        return run_poll(lfd);
    }
    return run_block(lfd);
}
