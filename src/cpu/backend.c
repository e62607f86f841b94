/* backend.c — the cpu backend's table and its per-context state (the chosen kernel table). */
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"

static mfa_error_t cpu_init(mfa_context *ctx) {
    mfa_cpu_state_t *state = calloc(1, sizeof *state);
    if (!state) return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu backend: cannot allocate its state");
    const char *note;
    state->kernels = mfa_cpu_kernels_select(&note);
    /* without a pool (no memory) every call runs on the caller alone: slower, never wrong */
    state->pool = ctx->num_threads > 1 ? mfa_cpu_pool_create() : NULL;
    ctx->backend_state = state;
    snprintf(ctx->description, sizeof ctx->description, "cpu: %s kernels, %d thread%s%s%s", state->kernels->isa,
             ctx->num_threads, ctx->num_threads == 1 ? "" : "s", note ? "; " : "", note ? note : "");
    return MFA_SUCCESS;
}

static void cpu_destroy(mfa_context *ctx) {
    mfa_cpu_state_t *state = ctx->backend_state;
    if (state) free(state->pack_mem), mfa_cpu_pool_destroy(state->pool);
    free(state);
}

const mfa_backend_t mfa_cpu_backend = {
    .interface_version = MFA_BACKEND_INTERFACE_VERSION,
    .name = "cpu",
    .max_head_dim = MFA_CPU_MAX_HEAD_DIM,
    .init = cpu_init,
    .destroy = cpu_destroy,
    .fwd = mfa_cpu_fwd,
    .bwd = mfa_cpu_bwd,
};
