// Exits with the status given as its first argument (which may be out of range).
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    exit((int)strtol(argv[1], NULL, 10));
}
