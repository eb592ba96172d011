// Preloaded into a process, hides ISA extensions from CPUID so libraries that dispatch on CPUID (ONNX Runtime's
// MLAS) take their AVX2 code paths on this machine. Uses Linux CPUID faulting (arch_prctl ARCH_SET_CPUID): every
// CPUID then traps, and the SIGSEGV handler runs the real instruction and clears the hidden feature bits.
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <cpuid.h>
#include <dlfcn.h>

#define ARCH_SET_CPUID 0x1012

// What the process itself asked SIGSEGV to do (Node resets every signal at start-up, V8 adds its own handler):
// recorded and chained to, while this handler stays installed.
static struct sigaction previous;
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static volatile long trapped;

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}

static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  if (leaf == 7 && sub == 0) {
    // EBX: AVX-512 F, DQ, IFMA, PF, ER, CD, BW, VL.
    r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
    // ECX: AVX-512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ.
    r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    // EDX: AVX-512 4VNNIW, 4FMAPS, VP2INTERSECT, FP16; AMX BF16, TILE, INT8.
    r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    r[0] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23)); // AVX-VNNI, AVX512_BF16, AMX-FP16, AVX-IFMA
    r[3] &= ~((1u << 4) | (1u << 5) | (1u << 10)); // AVX-VNNI-INT8, AVX-NE-CONVERT, AVX-VNNI-INT16
  } else if (leaf == 0xD && sub == 0) {
    r[0] &= ~(0xE0u | (3u << 17)); // XSAVE components: opmask, ZMM_Hi256, Hi16_ZMM; AMX tile config and data
  }
}

static void on_segv(int sig, siginfo_t *info, void *ctx) {
  ucontext_t *uc = ctx;
  greg_t *g = uc->uc_mcontext.gregs;
  const uint8_t *ip = (const uint8_t *)g[REG_RIP];
  if (ip[0] == 0x0F && ip[1] == 0xA2) {
    uint32_t r[4];
    uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
    real_cpuid(leaf, sub, r);
    mask(leaf, sub, r);
    g[REG_RAX] = r[0];
    g[REG_RBX] = r[1];
    g[REG_RCX] = r[2];
    g[REG_RDX] = r[3];
    g[REG_RIP] += 2;
    trapped++;
    return;
  }
  // Not ours: hand over to whatever handled SIGSEGV before, or die as usual.
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) { previous.sa_sigaction(sig, info, ctx); return; }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  real_sigaction(SIGSEGV, &dfl, NULL);
}

sighandler_t signal(int sig, sighandler_t handler) {
  if (!real_sigaction) real_sigaction = dlsym(RTLD_NEXT, "sigaction");
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (!real_sigaction) real_sigaction = dlsym(RTLD_NEXT, "sigaction");
  if (sig != SIGSEGV) return real_sigaction(sig, act, old);
  if (old) *old = previous;
  if (act) previous = *act;
  return 0;
}

__attribute__((constructor)) static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  real_sigaction = dlsym(RTLD_NEXT, "sigaction");
  real_sigaction(SIGSEGV, &sa, &previous);
  if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
    static const char msg[] = "cpuid-mask: CPUID faulting is not available on this machine\n";
    write(2, msg, sizeof msg - 1);
    _exit(97);
  }
}
