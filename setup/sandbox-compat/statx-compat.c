/*
 * Preloaded into every program of the sandbox image (/etc/ld.so.preload).
 *
 * gVisor's release in Debian 12 (runsc 2022-12-19) answers EINVAL to statx()
 * and fstatat() calls that carry AT_NO_AUTOMOUNT, and coreutils 9 passes that
 * flag on every call: `ls -l`, `stat` and friends fail with "Invalid
 * argument". The flag only stops an automount point from being mounted, and a
 * sandbox container has none, so dropping it changes nothing else, under any
 * runtime.
 *
 * Freestanding on purpose: no libc headers or link, only the raw system call
 * and glibc's __errno_location (present in every glibc), so one build loads
 * into any glibc-based image of the same architecture.
 */

#define AT_NO_AUTOMOUNT 0x800

#if defined(__x86_64__)
#define NR_STATX 332
#define NR_NEWFSTATAT 262
static long raw4(long nr, long a, long b, long c, long d) {
    register long r10 __asm__("r10") = d;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
static long raw5(long nr, long a, long b, long c, long d, long e) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define NR_STATX 291
#define NR_NEWFSTATAT 79
static long raw5(long nr, long a, long b, long c, long d, long e) {
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
                     : "memory");
    return x0;
}
static long raw4(long nr, long a, long b, long c, long d) { return raw5(nr, a, b, c, d, 0); }
#else
#error "statx-compat: only x86_64 and aarch64"
#endif

extern int *__errno_location(void);

static int result(long ret) {
    if (ret < 0 && ret > -4096) {
        *__errno_location() = (int)-ret;
        return -1;
    }
    return (int)ret;
}

__attribute__((visibility("default"))) int statx(int dirfd, const char *path, int flags,
                                                 unsigned int mask, void *buf) {
    return result(raw5(NR_STATX, dirfd, (long)path, flags & ~AT_NO_AUTOMOUNT, mask, (long)buf));
}

__attribute__((visibility("default"))) int fstatat(int dirfd, const char *path, void *buf,
                                                   int flags) {
    return result(raw4(NR_NEWFSTATAT, dirfd, (long)path, (long)buf, flags & ~AT_NO_AUTOMOUNT));
}

__attribute__((visibility("default"))) int fstatat64(int dirfd, const char *path, void *buf,
                                                     int flags) {
    return fstatat(dirfd, path, buf, flags);
}
