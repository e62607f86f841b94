/* avx512bf16.c — the AVX-512 kernels plus the VDPBF16PS GEMM (compiled with -mavx512bf16 too). */
#define MFA_KERNELS_NAME mfa_cpu_kernels_avx512bf16
#define MFA_ISA "avx512bf16"
#define MFA_BF16_DOT 1
#include "simd-avx512.h"
#include "../kernels.inc"
