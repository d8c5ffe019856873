/* A stand-in for the Apple SDK's stdlib.h, for scripts/check-targets.sh only: cargo check
   of the macOS targets compiles ring's and wasmtime's C sources (their build scripts)
   but links nothing, so declarations are enough. Never used to build a binary. */
#pragma once
#include <stddef.h>
void *malloc(size_t);
void free(void *);
void abort(void);
