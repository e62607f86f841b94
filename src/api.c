/* api.c — the full API's entry points: validate (params.c), then hand the problem to the
 * context's backend. */
#include "backend.h"
#include "params.h"

static mfa_error_t run(mfa_context_t context, const mfa_attention_params_t *p, int32_t direction) {
    mfa_problem_t pr;
    mfa_error_t err = mfa_prepare(context, p, direction, &pr);
    if (err != MFA_SUCCESS) return err;
    mfa_context *ctx = mfa_context_from_handle(context);
    return direction == MFA_DIRECTION_FWD ? ctx->backend->fwd(ctx, &pr) : ctx->backend->bwd(ctx, &pr);
}

mfa_error_t mfa_attention_fwd(mfa_context_t context, const mfa_attention_params_t *p) {
    return run(context, p, MFA_DIRECTION_FWD);
}

mfa_error_t mfa_attention_bwd(mfa_context_t context, const mfa_attention_params_t *p) {
    return run(context, p, MFA_DIRECTION_BWD);
}

mfa_error_t mfa_attention_supported(mfa_context_t context, const mfa_attention_params_t *p,
                                    int32_t direction) {
    mfa_problem_t pr;
    return mfa_prepare(context, p, direction, &pr);
}
