package mfa

/*
#include "mfa.h"

// The direct C call the binding's overhead is measured against (bench_test.go): `calls` calls of
// mfa_attention_fwd on a tiny problem (batch 1, 1 head, seq 1, dim 8), timed in C.
#include <time.h>
static double mfa_go_direct_loop(mfa_context_t ctx, long calls) {
	static float q[8], k[8], v[8], o[8];
	mfa_attention_params_t p;
	mfa_attention_params_init(&p);
	p.batch = p.seqlen_q = p.seqlen_kv = p.heads_q = p.heads_kv = 1;
	p.head_dim_qk = p.head_dim_v = 8;
	mfa_tensor_contiguous(&p.q, q, MFA_DTYPE_F32, 1, 1, 8);
	mfa_tensor_contiguous(&p.k, k, MFA_DTYPE_F32, 1, 1, 8);
	mfa_tensor_contiguous(&p.v, v, MFA_DTYPE_F32, 1, 1, 8);
	mfa_tensor_contiguous(&p.o, o, MFA_DTYPE_F32, 1, 1, 8);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < calls; i++)
		if (mfa_attention_fwd(ctx, &p) != MFA_SUCCESS) return -1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}
*/
import "C"

import "time"

// directLoop times `calls` direct C calls of mfa_attention_fwd on c's context (for the overhead
// benchmark; see bench_test.go).
func directLoop(c *Context, calls int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(float64(C.mfa_go_direct_loop(c.raw, C.long(calls))) * 1e9)
}
