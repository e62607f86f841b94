/* backend.h — the internal backend interface: a versioned table of function pointers.
 *
 * The core validates every call, builds one mfa_problem_t and hands it to a backend; the backend
 * never validates user input and the core never knows a kernel's tile size. Slots marked
 * (optional) may be NULL. A backend reports failures with mfa_set_error(ctx, code, ...). */
#ifndef MFA_BACKEND_H
#define MFA_BACKEND_H

#include "context.h"
#include "problem.h"

/* 2: appended the GPU slots (set_stream, synchronize, copy, gpu_latency). A plugin built against
 * another version is refused when it is loaded. */
#define MFA_BACKEND_INTERFACE_VERSION 2

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

    /* ---- Interface version 2: asynchronous (GPU) backends. All optional: a NULL slot means the
     * backend computes synchronously on host memory, and the core does the plain thing. ---- */
    /* called by mfa_context_set_stream before ctx->stream changes to `stream`: make the work
     * already enqueued on the old stream safe (the backend's workspace must never be used by two
     * streams at once) and check the new one */
    mfa_error_t (*set_stream)(mfa_context *ctx, void *stream);
    /* wait until all work enqueued on ctx->stream has finished; report its errors */
    mfa_error_t (*synchronize)(mfa_context *ctx);
    /* copy `bytes` between host memory and backend memory (from alloc or a wrapped pointer):
     * to_host = true copies backend src -> host dst. Returns when the copy is complete, ordered
     * after the work already enqueued on ctx->stream. memcpy when NULL. */
    mfa_error_t (*copy)(mfa_context *ctx, void *dst, const void *src, size_t bytes, bool to_host);
    /* device time of the last fwd/bwd call in seconds (waits for it to finish); 0 when NULL */
    double (*gpu_latency)(mfa_context *ctx);
} mfa_backend_t;

extern const mfa_backend_t mfa_cpu_backend;
extern const mfa_backend_t mfa_reference_backend;

#endif
