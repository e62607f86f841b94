/* backend.c — the cpu backend's table and its context setup. */
#include <stdio.h>

#include "cpu.h"

static mfa_error_t cpu_init(mfa_context *ctx) {
    snprintf(ctx->description, sizeof ctx->description, "cpu: portable C (compiler-vectorised), %d thread%s",
             ctx->num_threads, ctx->num_threads == 1 ? "" : "s");
    return MFA_SUCCESS;
}

const mfa_backend_t mfa_cpu_backend = {
    .interface_version = MFA_BACKEND_INTERFACE_VERSION,
    .name = "cpu",
    .max_head_dim = MFA_CPU_MAX_HEAD_DIM,
    .init = cpu_init,
    .fwd = mfa_cpu_fwd,
    .bwd = mfa_cpu_bwd,
};
