/* errno_name(): the errno's conventional name, shared by every C guest so that
 * transcripts and test expectations use one spelling. */
#ifndef GUESTS_ERRNO_NAME_H
#define GUESTS_ERRNO_NAME_H

#include <errno.h>
#include <stdio.h>

static __attribute__((unused)) const char *errno_name(int e) {
    static char other[32];
    switch (e) {
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EISDIR: return "EISDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOENT: return "ENOENT";
    case ENOSPC: return "ENOSPC";
    case ENOTDIR: return "ENOTDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case EXDEV: return "EXDEV";
    case ESPIPE: return "ESPIPE";
    case EMFILE: return "EMFILE";
    case EFBIG: return "EFBIG";
    case EAGAIN: return "EAGAIN";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "ENOTSUP";
    case EOVERFLOW: return "EOVERFLOW";
    case EFAULT: return "EFAULT";
    case EIO: return "EIO";
    case EBUSY: return "EBUSY";
    case ENXIO: return "ENXIO";
    default:
        snprintf(other, sizeof other, "errno=%d", e);
        return other;
    }
}

#endif
