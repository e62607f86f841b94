/* backend.h — the internal backend interface: a versioned table of function pointers.
 *
 * The core validates every call, builds one mfa_problem_t and hands it to a backend; the backend
 * never validates user input and the core never knows a kernel's tile size. Slots marked
 * (optional) may be NULL. A backend reports failures with mfa_set_error(ctx, code, ...). */
#ifndef MFA_BACKEND_H
#define MFA_BACKEND_H

#include "context.h"
#include "problem.h"

#define MFA_BACKEND_INTERFACE_VERSION 1

typedef struct mfa_backend {
    uint32_t interface_version; /* MFA_BACKEND_INTERFACE_VERSION */
    const char *name;           /* "cpu", "cuda", "reference" */
    int64_t max_head_dim;       /* largest head_dim_qk / head_dim_v it accepts */

    /* (optional) set up per-context state in ctx->backend_state; fill ctx->description */
    mfa_error_t (*init)(mfa_context *ctx);
    /* (optional) free ctx->backend_state */
    void (*destroy)(mfa_context *ctx);
    /* (optional) backend-specific refusals beyond the core's checks (dtype combinations,
     * strides it cannot read); MFA_SUCCESS when it can run the problem */
    mfa_error_t (*supports)(mfa_context *ctx, const mfa_problem_t *pr, int32_t direction);

    mfa_error_t (*fwd)(mfa_context *ctx, const mfa_problem_t *pr);
    mfa_error_t (*bwd)(mfa_context *ctx, const mfa_problem_t *pr);

    /* (optional) memory the backend computes on; host malloc when NULL */
    mfa_error_t (*alloc)(mfa_context *ctx, size_t size, void **out);
    void (*free)(mfa_context *ctx, void *data);
} mfa_backend_t;

extern const mfa_backend_t mfa_cpu_backend;
extern const mfa_backend_t mfa_reference_backend;

#endif
