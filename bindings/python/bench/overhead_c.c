/* overhead_c.c — the C side of the Python overhead measurement (bench/overhead.py builds and runs
 * it): times mfa_attention_fwd on a tiny problem (batch 1, 1 head, seq 1, dim 8, f32, 1-thread
 * cpu context), called the way a C program would: params_init + fill + call, every iteration.
 * Prints one line: "c_call_us <microseconds per call>", the best of 20 runs. The Python overhead is the Python call's
 * time minus this.
 *
 * Build: cc -O2 -I include overhead_c.c -L build -lmfa -Wl,-rpath,build -o overhead_c */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mfa.h"

/* CPU time of this thread: on a shared machine, time spent descheduled is not counted (the
 * Python side is timed the same way, with time.thread_time). */
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const long iters = argc > 1 ? atol(argv[1]) : 20000;
    const int seq = 1, heads = 1, dim = 8;
    float q[8], k[8], v[8], o[8];
    for (int i = 0; i < 8; i++) q[i] = k[i] = v[i] = 0.125f * (float)i;

    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = MFA_BACKEND_CPU;
    opt.num_threads = 1;
    mfa_context_t ctx;
    if (mfa_create_context_ex(&ctx, &opt) != MFA_SUCCESS) {
        fprintf(stderr, "context: %s\n", mfa_last_error_message(NULL));
        return 1;
    }
    double best = 1e30;
    for (int rep = 0; rep < 20; rep++) {
        const double t0 = now_s();
        for (long it = 0; it < iters; it++) {
            mfa_attention_params_t p;
            mfa_attention_params_init(&p);
            p.batch = 1;
            p.seqlen_q = p.seqlen_kv = seq;
            p.heads_q = p.heads_kv = heads;
            p.head_dim_qk = p.head_dim_v = dim;
            mfa_tensor_contiguous(&p.q, q, MFA_DTYPE_F32, seq, heads, dim);
            mfa_tensor_contiguous(&p.k, k, MFA_DTYPE_F32, seq, heads, dim);
            mfa_tensor_contiguous(&p.v, v, MFA_DTYPE_F32, seq, heads, dim);
            mfa_tensor_contiguous(&p.o, o, MFA_DTYPE_F32, seq, heads, dim);
            if (mfa_attention_fwd(ctx, &p) != MFA_SUCCESS) {
                fprintf(stderr, "fwd: %s\n", mfa_last_error_message(ctx));
                return 1;
            }
        }
        const double us = (now_s() - t0) / (double)iters * 1e6;
        if (us < best) best = us;
    }
    printf("c_call_us %.3f\n", best);
    mfa_destroy_context(ctx);
    return 0;
}
