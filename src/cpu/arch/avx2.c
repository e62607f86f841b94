/* avx2.c — the SIMD kernels for AVX2 + FMA + F16C (compiled with -mavx2 -mfma -mf16c). */
#include "simd-avx2.h"
#include "../kernels.inc"
