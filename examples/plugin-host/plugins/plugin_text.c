/* The C plugin of examples/plugin-host, which the plugin tests use too
 * (capsule_plugin.h): text functions, JSON built by hand, a host function, and a
 * global that must not outlive a call. */
#include <capsule_plugin.h>
#include <stdio.h>

CAPSULE_HOST_FUNCTION(kv_get, "kv.get");

static uint32_t calls;

/* The input reversed. */
CAPSULE_EXPORT(reverse) uint64_t reverse(const uint8_t *in, uint32_t len) {
    uint8_t *out = capsule_alloc(len);
    for (uint32_t i = 0; i < len; i++) {
        out[i] = in[len - 1 - i];
    }
    return capsule_ok(out, len);
}

/* {"words":N,"bytes":M} for the input. */
CAPSULE_EXPORT(count) uint64_t count(const uint8_t *in, uint32_t len) {
    uint32_t words = 0;
    int in_word = 0;
    for (uint32_t i = 0; i < len; i++) {
        int space = in[i] == ' ' || in[i] == '\n' || in[i] == '\t';
        if (!space && !in_word) {
            words++;
        }
        in_word = !space;
    }
    char *out = capsule_alloc(64);
    int n = snprintf(out, 64, "{\"words\":%u,\"bytes\":%u}", words, len);
    return capsule_ok(out, (uint32_t)n);
}

/* How many calls this instance has seen: 1 in every fresh instance. */
CAPSULE_EXPORT(calls_seen) uint64_t calls_seen(const uint8_t *in, uint32_t len) {
    (void)in;
    (void)len;
    calls++;
    char *out = capsule_alloc(16);
    int n = snprintf(out, 16, "%u", calls);
    return capsule_ok(out, (uint32_t)n);
}

/* "c:" and the value of kv.get for the input key; the host's error as ours. */
CAPSULE_EXPORT(lookup) uint64_t lookup(const uint8_t *in, uint32_t len) {
    capsule_result r = capsule_unpack(kv_get(in, len));
    if (r.is_error) {
        char *message = capsule_alloc(r.len + 8);
        memcpy(message, "kv.get: ", 8);
        memcpy(message + 8, r.ptr, r.len);
        return capsule_ok(message, r.len + 8) | ((uint64_t)1 << 31);
    }
    uint8_t *out = capsule_alloc(r.len + 2);
    memcpy(out, "c:", 2);
    memcpy(out + 2, r.ptr, r.len);
    return capsule_ok(out, r.len + 2);
}

/* An error result. */
CAPSULE_EXPORT(refuse) uint64_t refuse(const uint8_t *in, uint32_t len) {
    (void)in;
    (void)len;
    return capsule_error("the C plugin refuses");
}
