/* avx512.c — the SIMD kernels for AVX-512 F/BW/VL (compiled with -mavx512f -mavx512bw -mavx512vl). */
#include "simd-avx512.h"
#include "../kernels.inc"
