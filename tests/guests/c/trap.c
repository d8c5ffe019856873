// Traps inside a named function two calls deep, so the backtrace has names to show.
#include <stdio.h>

__attribute__((noinline)) static void crash_here(int depth) {
    if (depth > 0) __builtin_trap();
    puts("not reached");
}

__attribute__((noinline)) void guest_work(int depth) {
    crash_here(depth);
}

int main(int argc, char **argv) {
    (void)argv;
    printf("about to trap\n");
    fflush(stdout);
    guest_work(argc);
    return 0;
}
