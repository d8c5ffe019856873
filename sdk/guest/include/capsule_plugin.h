/*
 * capsule_plugin.h: write Capsule plugins in C (wasm32-wasi, as a reactor).
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -I sdk/guest/include \
 *         plugin.c -o plugin.wasm
 *
 * The ABI (docs/plugins.md): the module exports `memory`, `capsule_alloc(len) -> ptr`
 * (defined here, weak) and each plugin function as `name(ptr, len) -> u64`, whose result
 * packs a pointer (bits 63..32), an error bit (bit 31: the bytes are a UTF-8 message)
 * and a length (bits 30..0). Host functions are imported from the module `capsule_host`
 * under their namespaced names ("kv.get"), with the same types. Every call runs in a
 * fresh instance: nothing needs to be freed.
 *
 *   #include <capsule_plugin.h>
 *   CAPSULE_HOST_FUNCTION(kv_get, "kv.get");
 *
 *   CAPSULE_EXPORT(upper) uint64_t upper(const uint8_t *in, uint32_t len) {
 *       uint8_t *out = capsule_alloc(len);
 *       for (uint32_t i = 0; i < len; i++) out[i] = toupper(in[i]);
 *       return capsule_ok(out, len);
 *   }
 */
#ifndef CAPSULE_PLUGIN_H
#define CAPSULE_PLUGIN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Exports a plugin function under its own name. */
#define CAPSULE_EXPORT(name) __attribute__((export_name(#name)))

/* Declares the host function `host_name` ("namespace.function") as the C function
 * `uint64_t c_name(const void *ptr, uint32_t len)`; unpack its result with
 * capsule_unpack. */
#define CAPSULE_HOST_FUNCTION(c_name, host_name)                                      \
    __attribute__((import_module("capsule_host"), import_name(host_name))) uint64_t  \
    c_name(const void *ptr, uint32_t len)

/* Gives the host `len` bytes to write into (never freed: the instance ends with the
 * call). Weak, so that a plugin may define its own. */
__attribute__((weak, export_name("capsule_alloc"))) void *capsule_alloc(uint32_t len) {
    return malloc(len ? len : 1);
}

/* A successful result: `len` bytes at `ptr` (which must stay valid: static or
 * allocated). */
static inline uint64_t capsule_ok(const void *ptr, uint32_t len) {
    return ((uint64_t)(uintptr_t)ptr << 32) | (uint64_t)(len & 0x7fffffffu);
}

/* An error result: the NUL-terminated message (static or allocated). */
static inline uint64_t capsule_error(const char *message) {
    return capsule_ok(message, (uint32_t)strlen(message)) | ((uint64_t)1 << 31);
}

/* A host function's result, unpacked. */
typedef struct {
    const uint8_t *ptr;
    uint32_t len;
    int is_error; /* 1: ptr/len hold the host's error message (not NUL-terminated) */
} capsule_result;

static inline capsule_result capsule_unpack(uint64_t packed) {
    capsule_result r;
    r.ptr = (const uint8_t *)(uintptr_t)(uint32_t)(packed >> 32);
    r.len = (uint32_t)(packed & 0x7fffffffu);
    r.is_error = (packed >> 31) & 1;
    return r;
}

#endif /* CAPSULE_PLUGIN_H */
