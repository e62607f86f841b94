/* select.c — choose the kernel table from CPUID (the compiler's cpu-feature query, which also
 * checks that the OS saves the wide registers), or from MFA_CPU_ISA for tests. */
#include <stdlib.h>
#include <string.h>
#if defined(MFA_AMX_KERNELS)
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels.h"

#if defined(MFA_X86_KERNELS)
#define MFA_X86 1
#else /* no SIMD tables were compiled: every name resolves to the scalar one */
#define MFA_X86 0
#define mfa_cpu_kernels_avx2 mfa_cpu_kernels_scalar
#define mfa_cpu_kernels_avx512 mfa_cpu_kernels_scalar
#define mfa_cpu_kernels_avx512bf16 mfa_cpu_kernels_scalar
#endif
#if !defined(MFA_AMX_KERNELS) /* compiler without AMX: the name resolves to the avx512bf16 table */
#define mfa_cpu_kernels_amx mfa_cpu_kernels_avx512bf16
#endif

static bool cpu_has_avx512(void) {
#if MFA_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

static bool cpu_has_avx512bf16(void) {
#if MFA_X86
    return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

/* Whether the bf16 dot product beats fp32 FMAs here. AMD Zen 4/5 issue VDPBF16PS on two pipes
 * (twice the fp32 FMA rate); Intel Sapphire Rapids on one, where the bf16 path measured 0.63x
 * of the fp32 one (H100 host Xeon, 2026-11-26: 86.6 vs 136.8 GFLOP/s, (1, 8, 2048, 128), 2
 * threads), so there it is used only when asked for (MFA_CPU_ISA=avx512bf16). */
static bool bf16_dot_pays(void) {
#if MFA_X86
    return cpu_has_avx512bf16() && __builtin_cpu_is("amd");
#else
    return false;
#endif
}

/* AMX-BF16 (chosen first where it runs: on a 16-core Xeon the bf16 forward 2.1-2.9x and the
 * backward 2.2-2.4x the avx512 table, which was itself faster there than VDPBF16PS), and the
 * kernel's leave to use the tile registers (Linux hands the 8 KiB of tile
 * state to a process only when it asks: arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, once). */
static bool cpu_has_amx(void) {
#if defined(MFA_AMX_KERNELS) && defined(SYS_arch_prctl)
    static _Atomic int granted = -1; /* racing first calls both ask; the answer is the same */
    if (atomic_load(&granted) < 0)
        atomic_store(&granted, cpu_has_avx512bf16() && __builtin_cpu_supports("amx-tile") &&
                                   __builtin_cpu_supports("amx-bf16") &&
                                   syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                                           18 /* XFEATURE_XTILEDATA */) == 0);
    return atomic_load(&granted) == 1;
#else
    return false;
#endif
}

static bool cpu_has_avx2(void) {
#if MFA_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

const mfa_cpu_kernels_t *mfa_cpu_kernels_select(const char **note) {
    const mfa_cpu_kernels_t *best = cpu_has_amx()     ? &mfa_cpu_kernels_amx
                                    : bf16_dot_pays() ? &mfa_cpu_kernels_avx512bf16
                                    : cpu_has_avx512() ? &mfa_cpu_kernels_avx512
                                    : cpu_has_avx2() ? &mfa_cpu_kernels_avx2
                                                     : &mfa_cpu_kernels_scalar;
    *note = NULL;
    const char *want = getenv("MFA_CPU_ISA");
    if (!want || !*want || !strcmp(want, "auto")) return best;
    if (!strcmp(want, "scalar")) return &mfa_cpu_kernels_scalar;
    if (!strcmp(want, "scalar-bf16")) return &mfa_cpu_kernels_scalar_bf16;
    if (!strcmp(want, "avx512bf16")) {
        if (cpu_has_avx512bf16()) return &mfa_cpu_kernels_avx512bf16;
        *note = "MFA_CPU_ISA=avx512bf16 but this CPU lacks AVX512-BF16";
        return best;
    }
    if (!strcmp(want, "amx")) {
        if (cpu_has_amx()) return &mfa_cpu_kernels_amx;
        *note = "MFA_CPU_ISA=amx but this CPU (or kernel, or build) has no AMX-BF16";
        return best;
    }
    if (!strcmp(want, "avx2")) {
        if (cpu_has_avx2()) return &mfa_cpu_kernels_avx2;
        *note = "MFA_CPU_ISA=avx2 but this CPU lacks AVX2/FMA/F16C";
        return best;
    }
    if (!strcmp(want, "avx512")) {
        if (cpu_has_avx512()) return &mfa_cpu_kernels_avx512;
        *note = "MFA_CPU_ISA=avx512 but this CPU lacks AVX-512 F/BW/VL";
        return best;
    }
    *note = "MFA_CPU_ISA is not one of auto, scalar, scalar-bf16, avx2, avx512, avx512bf16, amx";
    return best;
}
