/* A stand-in for the Apple SDK's string.h, for scripts/check-targets.sh only: cargo check
   of the macOS targets compiles ring's and wasmtime's C sources (their build scripts)
   but links nothing, so declarations are enough. Never used to build a binary. */
#pragma once
#include <stddef.h>
void *memcpy(void *, const void *, size_t);
void *memmove(void *, const void *, size_t);
void *memset(void *, int, size_t);
int memcmp(const void *, const void *, size_t);
size_t strlen(const char *);
