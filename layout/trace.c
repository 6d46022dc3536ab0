/* Records the code a program runs, a page at a time: layout/generate.py's
 * second look, for what callgrind cannot see (code that runs in a child
 * sharing pm's memory before it execs, paths only a native run takes).
 *
 * Loaded with LD_PRELOAD into the binary named by TRACE_BINARY, it takes
 * every permission off that binary's code before main, and on each fault
 * gives the one page back and writes where the fault was (hex, from the
 * start of the mapping) to TRACE_OUT: the first instruction run on that
 * page, so a function that certainly ran. Only that first process is traced: it takes
 * itself out of the environment its children inherit (pm's guardian is
 * the same binary, in a process of its own). The program's own SIGSEGV handler is
 * refused: it would take the fault for a crash.
 *
 * A child that pm clones runs in pm's memory with every signal blocked
 * until it execs: a fault there would kill it. So the code is given back
 * whole around pm's calls to clone() and taken away again after (from the
 * pages not seen yet); generate.py names the child's code itself.
 *
 *   gcc -shared -fPIC -O2 -o trace.so layout/trace.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned long lo, hi;
static int out = -1;
/* Pages given back so far, by index from lo. */
static unsigned char seen[1 << 18];

static void on_fault(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    unsigned long at = (unsigned long)info->si_addr;
    if (at < lo || at >= hi) {
        /* A real crash: let it happen. */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    unsigned long page = at & ~4095UL;
    mprotect((void *)page, 4096, PROT_READ | PROT_EXEC);
    if ((page - lo) / 4096 < sizeof seen) seen[(page - lo) / 4096] = 1;
    char text[24];
    int n = 0;
    char digits[20];
    int k = 0;
    unsigned long offset = at - lo;
    do {
        digits[k++] = "0123456789abcdef"[offset & 15];
        offset >>= 4;
    } while (offset);
    while (k) text[n++] = digits[--k];
    text[n++] = '\n';
    if (write(out, text, n) < 0) {
        /* Nothing to do: the page is given back either way. */
    }
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    static int (*real)(int, const struct sigaction *, struct sigaction *);
    if (!real) real = dlsym(RTLD_NEXT, "sigaction");
    if (out >= 0 && (sig == SIGSEGV || sig == SIGBUS) && act &&
        act->sa_sigaction != on_fault)
        return 0;
    return real(sig, act, old);
}

int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...) {
    static int (*real)(int (*)(void *), void *, int, void *, ...);
    if (!real) real = dlsym(RTLD_NEXT, "clone");
    va_list rest;
    va_start(rest, arg);
    pid_t *parent_tid = va_arg(rest, pid_t *);
    void *tls = va_arg(rest, void *);
    pid_t *child_tid = va_arg(rest, pid_t *);
    va_end(rest);
    if (out >= 0) mprotect((void *)lo, hi - lo, PROT_READ | PROT_EXEC);
    int pid = real(fn, stack, flags, arg, parent_tid, tls, child_tid);
    if (out >= 0) {
        unsigned long pages = (hi - lo) / 4096;
        for (unsigned long i = 0; i < pages && i < sizeof seen; i++)
            if (!seen[i]) mprotect((void *)(lo + i * 4096), 4096, PROT_NONE);
    }
    return pid;
}

__attribute__((constructor)) static void start(void) {
    const char *binary = getenv("TRACE_BINARY");
    const char *path = getenv("TRACE_OUT");
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (!binary || !path || len <= 0) return;
    exe[len] = 0;
    if (strcmp(exe, binary) != 0) return;
    unsetenv("LD_PRELOAD");
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return;
    char line[4200];
    while (fgets(line, sizeof line, maps)) {
        unsigned long a, b;
        char perms[8];
        char file[4096] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095s", &a, &b, perms, file) >= 3 &&
            strcmp(file, exe) == 0 && perms[2] == 'x') {
            lo = a;
            hi = b;
        }
    }
    fclose(maps);
    if (!hi) return;
    out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) return;
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_fault;
    act.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &act, NULL);
    mprotect((void *)lo, hi - lo, PROT_NONE);
}
