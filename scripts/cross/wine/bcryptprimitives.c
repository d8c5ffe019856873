/* Wine 8's missing piece for the Windows build of Capsule (the integration test
 * `windows` builds this into its Wine prefix only when Wine has no
 * bcryptprimitives.dll, and lists the gap in its table of Wine's gaps).
 *
 * Rust's std (1.78 and later) takes its randomness (HashMap seeds, temp-file names)
 * from ProcessPrng in bcryptprimitives.dll, which every supported Windows has and
 * Wine 8.0 lacks: without it the binary does not load (status c0000135). This
 * stand-in answers from RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
