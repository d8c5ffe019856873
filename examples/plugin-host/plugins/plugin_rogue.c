/* The misbehaving plugin of examples/plugin-host, which the plugin tests use too
 * (capsule_plugin.h): `misbehave` loops forever, allocates without end or traps, as
 * its input asks; `ok` answers normally, to show the pool still serves. */
#include <capsule_plugin.h>

static uint32_t calls;
/* The blocks allocated, chained, so that the compiler cannot drop the allocations. */
static void *volatile kept;

CAPSULE_EXPORT(misbehave) uint64_t misbehave(const uint8_t *in, uint32_t len) {
    if (len == 4 && memcmp(in, "loop", 4) == 0) {
        volatile uint64_t n = 0;
        for (;;) {
            n++;
        }
    }
    if (len == 5 && memcmp(in, "alloc", 5) == 0) {
        for (;;) {
            uint8_t *block = malloc(1 << 20);
            if (block == NULL) {
                __builtin_trap();
            }
            memset(block, 0xab, 1 << 20);
            *(void **)block = kept;
            kept = block;
        }
    }
    if (len == 4 && memcmp(in, "trap", 4) == 0) {
        __builtin_trap();
    }
    return capsule_error("ask for loop, alloc or trap");
}

/* "ok N", N the calls this instance has seen: always 1. */
CAPSULE_EXPORT(ok) uint64_t ok(const uint8_t *in, uint32_t len) {
    (void)in;
    (void)len;
    calls++;
    char *out = capsule_alloc(4);
    memcpy(out, "ok ", 3);
    out[3] = (char)('0' + (calls % 10));
    return capsule_ok(out, 4);
}
