/* mkdir, rmdir, unlink on directories, readdir (also while the directory
 * changes), opendir errors. */
#define SEED seed
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXN 128

/* Prints the sorted entry names of a directory (without "." and "..") and
 * whether "." and ".." were returned. */
static void list(const char *what, const char *path) {
    char *names[MAXN];
    int n = 0, dot = 0, dotdot = 0;
    DIR *d = opendir(path);
    if (!d) {
        ok(what, -1);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0)
            dot++;
        else if (strcmp(e->d_name, "..") == 0)
            dotdot++;
        else if (n < MAXN)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    printf("%s: dot=%d dotdot=%d entries=%d:", what, dot, dotdot, n);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    putchar('\n');
}

/* Names for the readdir-while-modifying test: long, so that 50 of them do
 * not fit in wasi-libc's 4 KiB readdir buffer and several fd_readdir calls
 * (with cookies) are needed. */
static void long_name(char *out, char prefix, int i) {
    snprintf(out, 128, "%c%02d_", prefix, i);
    memset(out + 4, 'x', 96);
    out[100] = '\0';
}

/* The starting files (in a read-only lower layer on the layered backend): so there
 * the readdir-while-changing test lists a directory of the layer while entries are
 * whited out and created above it. */
static void seed(void) {
    char name[128], path[256];
    make_file(P("file"), "data");
    MUST(mkdir(P("busy"), 0755));
    for (int i = 0; i < 50; i++) {
        long_name(name, 'f', i);
        snprintf(path, sizeof path, "busy/%s", name);
        make_file(P(path), "");
    }
}

static void readdir_while_changing(void) {
    char name[128], path[256];
    char *seen[MAXN];
    int nseen = 0;
    DIR *d = opendir(P("busy"));
    if (!d) {
        ok("opendir busy", -1);
        return;
    }
    struct dirent *e;
    while (nseen < 10 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            seen[nseen++] = strdup(e->d_name);
    }
    /* Delete 5 not-yet-seen originals (lowest numbers first) and create 5
     * new files. */
    int deleted[50] = {0};
    int ndel = 0;
    for (int i = 0; i < 50 && ndel < 5; i++) {
        long_name(name, 'f', i);
        int was_seen = 0;
        for (int j = 0; j < nseen; j++)
            was_seen |= strcmp(seen[j], name) == 0;
        if (!was_seen) {
            snprintf(path, sizeof path, "busy/%s", name);
            MUST(unlink(P(path)));
            deleted[i] = 1;
            ndel++;
        }
    }
    for (int i = 0; i < 5; i++) {
        long_name(name, 'g', i);
        snprintf(path, sizeof path, "busy/%s", name);
        make_file(P(path), "");
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            nseen < MAXN)
            seen[nseen++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(seen, nseen, sizeof seen[0], cmp_str);
    int dup = 0;
    for (int i = 1; i < nseen; i++)
        dup |= strcmp(seen[i - 1], seen[i]) == 0;
    int all = 1;
    for (int i = 0; i < 50; i++) {
        if (deleted[i])
            continue;
        long_name(name, 'f', i);
        int found = 0;
        for (int j = 0; j < nseen; j++)
            found |= strcmp(seen[j], name) == 0;
        all &= found;
    }
    printf("readdir while changing: deleted=%d created=5\n", ndel);
    printf("readdir while changing: no name twice = %s\n", dup ? "no" : "yes");
    printf("readdir while changing: every file that existed throughout was seen = %s\n",
           all ? "yes" : "no");
    for (int i = 0; i < nseen; i++)
        free(seen[i]);
    /* A fresh listing sees exactly the current contents. */
    DIR *d2 = opendir(P("busy"));
    int count = 0;
    MUST(d2 ? 0 : -1);
    while ((e = readdir(d2)) != NULL)
        count++;
    closedir(d2);
    printf("readdir after changes: %d entries including . and ..\n", count);
    /* Which files were deleted depends on the readdir order; remove them all
     * so that the final tree does not. */
    int bad = 0;
    for (int i = 0; i < 55; i++) {
        long_name(name, i < 50 ? 'f' : 'g', i < 50 ? i : i - 50);
        snprintf(path, sizeof path, "busy/%s", name);
        if (unlink(P(path)) < 0 && errno != ENOENT)
            bad = 1;
    }
    printf("unlink all in busy: %s\n", bad ? "error" : "ok");
    val("rmdir busy", rmdir(P("busy")));
}

int main(int argc, char **argv) {
    init(&argc, &argv);

    val("mkdir a", mkdir(P("a"), 0755));
    val("mkdir a again", mkdir(P("a"), 0755));
    val("mkdir a/ trailing slash", mkdir(P("a/"), 0755));
    val("mkdir b/ trailing slash new", mkdir(P("b/"), 0755));
    val("mkdir missing parent", mkdir(P("nope/c"), 0755));
    val("mkdir over file", mkdir(P("file"), 0755));
    val("mkdir under file", mkdir(P("file/c"), 0755));
    val("mkdir scratch itself", mkdir(P(""), 0755));

    /* mkdir -p style. */
    val("mkdir p", mkdir(P("p"), 0755));
    val("mkdir p/q", mkdir(P("p/q"), 0755));
    val("mkdir p/q/r", mkdir(P("p/q/r"), 0755));
    make_file(P("p/q/r/leaf"), "leaf");
    show_file("read p/q/r/leaf", P("p/q/r/leaf"));
    val("mkdir p/q/../q2", mkdir(P("p/q/../q2"), 0755));
    list("list p", P("p"));

    /* rmdir and unlink errors. */
    make_file(P("a/inner"), "x");
    val("rmdir non-empty", rmdir(P("a")));
    val("rmdir file", rmdir(P("file")));
    val("rmdir missing", rmdir(P("missing")));
    val("unlink dir", unlink(P("a")));
    val("unlink dir/ trailing slash", unlink(P("a/")));
    val("unlink file/ trailing slash", unlink(P("file/")));
    val("unlink missing", unlink(P("missing")));
    val("unlink a/inner", unlink(P("a/inner")));
    val("rmdir empty", rmdir(P("a")));
    val("rmdir again", rmdir(P("a")));
    val("rmdir b/ trailing slash", rmdir(P("b/")));
    val("rmdir p/q/r/.", rmdir(P("p/q/r/.")));
    val("rmdir scratch itself", rmdir(P("")));

    /* Listings. */
    MUST(mkdir(P("l"), 0755));
    list("list empty dir", P("l"));
    make_file(P("l/b.txt"), "b");
    make_file(P("l/a.txt"), "a");
    make_file(P("l/.hidden"), "h");
    MUST(mkdir(P("l/sub"), 0755));
    list("list l", P("l"));
    list("list l/sub/..", P("l/sub/.."));
    {
        DIR *d = opendir(P("l"));
        MUST(d ? 0 : -1);
        struct dirent *e;
        int file_t = 0, dir_t = 0;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, "a.txt") == 0)
                file_t = e->d_type == DT_REG;
            if (strcmp(e->d_name, "sub") == 0)
                dir_t = e->d_type == DT_DIR;
        }
        printf("d_type a.txt is DT_REG: %s\n", file_t ? "yes" : "no");
        printf("d_type sub is DT_DIR: %s\n", dir_t ? "yes" : "no");
        rewinddir(d);
        int count = 0;
        while (readdir(d) != NULL)
            count++;
        printf("count after rewinddir: %d\n", count);
        closedir(d);
    }

    /* opendir errors. */
    DIR *d = opendir(P("file"));
    ok("opendir file", d ? 0 : -1);
    if (d)
        closedir(d);
    d = opendir(P("missing"));
    ok("opendir missing", d ? 0 : -1);
    if (d)
        closedir(d);
    d = opendir(P("file/"));
    ok("opendir file/", d ? 0 : -1);
    if (d)
        closedir(d);
    int fd = open(P("file"), O_RDONLY);
    MUST(fd);
    d = fdopendir(fd);
    ok("fdopendir on file fd", d ? 0 : -1);
    if (d)
        closedir(d);
    else
        close(fd);

    readdir_while_changing();
    list("list scratch", P(""));
    return 0;
}
