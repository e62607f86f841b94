/* backend.c — the CUDA backend's host side: contexts, memory, streams, errors, dispatch.
 *
 * What this is: the plain-C glue between the core (which validated the call and built an
 * mfa_problem_t) and the kernel families (kernels/). It lives in libmfa_cuda.so, which libmfa.so
 * dlopens when a CUDA context is asked for and enters through mfa_plugin_backend(). The CUDA
 * runtime is linked statically, so the plugin needs nothing from a CUDA toolkit at run time: only
 * the driver, and where that is missing the context fails cleanly in init with the CUDA message.
 *
 * Every CUDA call goes through CUDA_TRY, which records file, line, the call and the CUDA error
 * name and string in the context. Everything per context (device properties, events, workspace)
 * hangs off ctx->backend_state: no globals. Calls run on the caller's thread with the context's
 * device made current for their duration (the caller's current device is restored). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "../backend.h"
#include "args.h"
#include "kernels/launch.h"

typedef struct cuda_state {
    int sm_major, sm_minor, sm_count;
    cudaEvent_t ev_start, ev_stop; /* around the kernels of the last fwd/bwd */
    bool timed;                    /* the events hold a finished-or-pending measurement */
    void *ws;                      /* device workspace: varlen offsets, backward scratch */
    size_t ws_size;
} cuda_state;

#define LOG2E 1.4426950408889634f

/* Writes the message into the context (the plugin cannot reach the core's hidden mfa_set_error;
 * the context struct is shared, so it writes the same field). */
static mfa_error_t say(mfa_context *ctx, mfa_error_t code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static mfa_error_t say(mfa_context *ctx, mfa_error_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
    va_end(ap);
    return code;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static mfa_error_t cuda_fail(mfa_context *ctx, mfa_error_t code, const char *file, int line, const char *call,
                             cudaError_t e) {
    return say(ctx, code, "cuda: %s:%d: %s: %s (%s)", base_name(file), line, call, cudaGetErrorName(e),
               cudaGetErrorString(e));
}

/* The one check macro: on failure, record where and why, and return `code` from the caller. */
#define CUDA_TRY(ctx, code, call)                                                   \
    do {                                                                            \
        const cudaError_t e_ = (call);                                              \
        if (e_ != cudaSuccess) return cuda_fail(ctx, code, __FILE__, __LINE__, #call, e_); \
    } while (0)

/* Makes the context's device current for one call; leave() restores the caller's. */
static mfa_error_t enter(mfa_context *ctx, int *prev) {
    CUDA_TRY(ctx, MFA_ERROR_EXECUTION_FAILED, cudaGetDevice(prev));
    if (*prev != ctx->device) CUDA_TRY(ctx, MFA_ERROR_EXECUTION_FAILED, cudaSetDevice(ctx->device));
    return MFA_SUCCESS;
}
static void leave(mfa_context *ctx, int prev) {
    if (prev != ctx->device) cudaSetDevice(prev);
}

static cudaStream_t stream_of(const mfa_context *ctx) { return (cudaStream_t)ctx->stream; }

/* ---- Context ------------------------------------------------------------------------------ */
static void cuda_destroy(mfa_context *ctx) {
    cuda_state *st = ctx->backend_state;
    if (!st) return;
    int prev = ctx->device;
    cudaGetDevice(&prev);
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(stream_of(ctx)); /* nothing may still use the workspace */
    if (st->ws) cudaFree(st->ws);
    if (st->ev_start) cudaEventDestroy(st->ev_start);
    if (st->ev_stop) cudaEventDestroy(st->ev_stop);
    if (prev != ctx->device) cudaSetDevice(prev);
    free(st);
    ctx->backend_state = NULL;
}

static mfa_error_t cuda_init(mfa_context *ctx) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        return say(ctx, MFA_ERROR_DEVICE_NOT_SUPPORTED, "cuda: no usable CUDA driver or device: cudaGetDeviceCount: %s (%s)",
                   cudaGetErrorName(e), cudaGetErrorString(e));
    if (ctx->device >= count)
        return say(ctx, MFA_ERROR_DEVICE_NOT_SUPPORTED, "cuda: options->device=%d but this machine has %d CUDA device%s",
                   ctx->device, count, count == 1 ? "" : "s");
    cuda_state *st = calloc(1, sizeof *st);
    if (!st) return say(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cuda: cannot allocate the context state");
    ctx->backend_state = st;
    const int dev = ctx->device;
    mfa_error_t err = MFA_SUCCESS;
#define INIT_TRY(call)                                                                          \
    do {                                                                                        \
        const cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess) {                                                                \
            err = cuda_fail(ctx, MFA_ERROR_DEVICE_NOT_SUPPORTED, __FILE__, __LINE__, #call, e_); \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)
    INIT_TRY(cudaDeviceGetAttribute(&st->sm_major, cudaDevAttrComputeCapabilityMajor, dev));
    INIT_TRY(cudaDeviceGetAttribute(&st->sm_minor, cudaDevAttrComputeCapabilityMinor, dev));
    INIT_TRY(cudaDeviceGetAttribute(&st->sm_count, cudaDevAttrMultiProcessorCount, dev));
    if (st->sm_major < 8) {
        err = say(ctx, MFA_ERROR_DEVICE_NOT_SUPPORTED, "cuda: device %d is sm_%d%d; the CUDA backend needs sm_80 or newer",
                  dev, st->sm_major, st->sm_minor);
        goto fail;
    }
    struct cudaDeviceProp prop;
    INIT_TRY(cudaGetDeviceProperties(&prop, dev));
    int prev = dev;
    INIT_TRY(cudaGetDevice(&prev));
    INIT_TRY(cudaSetDevice(dev));
    e = cudaEventCreate(&st->ev_start);
    if (e == cudaSuccess) e = cudaEventCreate(&st->ev_stop);
    if (prev != dev) cudaSetDevice(prev);
    INIT_TRY(e);
    snprintf(ctx->description, sizeof ctx->description, "cuda: %.100s (sm_%d%d, %d SMs), device %d", prop.name,
             st->sm_major, st->sm_minor, st->sm_count, dev);
    return MFA_SUCCESS;
fail:
    cuda_destroy(ctx);
    return err;
#undef INIT_TRY
}

/* ---- Memory, streams, timing --------------------------------------------------------------- */
static mfa_error_t cuda_alloc(mfa_context *ctx, size_t size, void **out) {
    int prev;
    mfa_error_t err = enter(ctx, &prev);
    if (err) return err;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaSuccess) e = cudaMemsetAsync(p, 0, size, stream_of(ctx));
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream_of(ctx));
    leave(ctx, prev);
    if (e != cudaSuccess) {
        if (p) cudaFree(p);
        return say(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cuda: cannot allocate size_bytes=%zu on device %d: %s (%s)", size,
                   ctx->device, cudaGetErrorName(e), cudaGetErrorString(e));
    }
    *out = p;
    return MFA_SUCCESS;
}

static void cuda_free(mfa_context *ctx, void *data) {
    int prev = ctx->device;
    cudaGetDevice(&prev);
    if (prev != ctx->device) cudaSetDevice(ctx->device);
    cudaFree(data); /* waits for the work that may still read it */
    if (prev != ctx->device) cudaSetDevice(prev);
}

static mfa_error_t cuda_copy(mfa_context *ctx, void *dst, const void *src, size_t bytes, bool to_host) {
    (void)to_host; /* cudaMemcpyDefault infers the direction from the (unified) addresses */
    int prev;
    mfa_error_t err = enter(ctx, &prev);
    if (err) return err;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(ctx));
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream_of(ctx));
    leave(ctx, prev);
    if (e != cudaSuccess)
        return say(ctx, MFA_ERROR_EXECUTION_FAILED, "cuda: copy of %zu bytes %s the device: %s (%s)", bytes,
                   to_host ? "from" : "to", cudaGetErrorName(e), cudaGetErrorString(e));
    return MFA_SUCCESS;
}

static mfa_error_t cuda_synchronize(mfa_context *ctx) {
    int prev;
    mfa_error_t err = enter(ctx, &prev);
    if (err) return err;
    const cudaError_t e = cudaStreamSynchronize(stream_of(ctx));
    leave(ctx, prev);
    if (e != cudaSuccess) return cuda_fail(ctx, MFA_ERROR_EXECUTION_FAILED, __FILE__, __LINE__, "cudaStreamSynchronize", e);
    return MFA_SUCCESS;
}

static mfa_error_t cuda_set_stream(mfa_context *ctx, void *stream) {
    (void)stream;
    return cuda_synchronize(ctx); /* the workspace must not serve two streams at once */
}

static double cuda_gpu_latency(mfa_context *ctx) {
    cuda_state *st = ctx->backend_state;
    if (!st->timed) return 0.0;
    float ms = 0.0f;
    if (cudaEventSynchronize(st->ev_stop) != cudaSuccess ||
        cudaEventElapsedTime(&ms, st->ev_start, st->ev_stop) != cudaSuccess)
        return 0.0;
    return (double)ms * 1e-3;
}

/* Grows the workspace to at least `bytes` (never shrinks; cudaFree waits for its users). */
static mfa_error_t workspace(mfa_context *ctx, size_t bytes) {
    cuda_state *st = ctx->backend_state;
    if (bytes <= st->ws_size) return MFA_SUCCESS;
    if (st->ws) {
        cudaFree(st->ws);
        st->ws = NULL;
        st->ws_size = 0;
    }
    const size_t rounded = (bytes + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
    CUDA_TRY(ctx, MFA_ERROR_MEMORY_ALLOCATION, cudaMalloc(&st->ws, rounded));
    st->ws_size = rounded;
    return MFA_SUCCESS;
}

/* ---- Attention ----------------------------------------------------------------------------- */
static void tensor(mfa_cuda_tensor_t *d, const mfa_tensor_t *t) {
    d->data = t->data;
    memcpy(d->stride, t->stride, sizeof d->stride);
    d->dtype = t->dtype;
}

static void fill_args(const mfa_problem_t *pr, mfa_cuda_args_t *a) {
    const mfa_attention_params_t *p = &pr->p;
    memset(a, 0, sizeof *a);
    tensor(&a->q, &p->q), tensor(&a->k, &p->k), tensor(&a->v, &p->v), tensor(&a->o, &p->o);
    tensor(&a->dout, &p->dout), tensor(&a->dq, &p->dq), tensor(&a->dk, &p->dk), tensor(&a->dv, &p->dv);
    tensor(&a->mask, &p->attn_mask);
    a->lse = p->lse;
    a->block_mask = p->block_mask;
    memcpy(a->block_stride, p->block_mask_stride, sizeof a->block_stride);
    a->block_q = p->block_q, a->block_kv = p->block_kv;
    a->batch = p->batch, a->heads_q = p->heads_q, a->heads_kv = p->heads_kv, a->group = pr->group;
    a->seqlen_q = p->seqlen_q, a->seqlen_kv = p->seqlen_kv;
    a->max_sq = pr->max_seqlen_q, a->max_sk = pr->max_seqlen_kv;
    a->head_dim_qk = p->head_dim_qk, a->head_dim_v = p->head_dim_v;
    a->scale = pr->scale;
    a->scale_log2 = pr->scale * LOG2E;
    a->softcap = p->softcap;
    a->mask_kind = p->mask, a->mask_align = p->mask_align;
    a->window_left = p->window_left, a->window_right = p->window_right;
    a->varlen = pr->varlen;
    a->deterministic = p->deterministic;
    a->allow_tf32 = p->allow_tf32;
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* Workspace layout: [cu_q | cu_k] (varlen), then the backward's delta and fp32 dQ, or the
 * forward's own (the fp32 Hopper forward's split operands). */
static mfa_error_t setup(mfa_context *ctx, const mfa_problem_t *pr, mfa_cuda_args_t *a, bool bwd) {
    cuda_state *st = ctx->backend_state;
    fill_args(pr, a);
    a->sm_count = st->sm_count;
    const size_t cu_bytes = pr->varlen ? align256(2 * sizeof(int32_t) * (size_t)(pr->p.batch + 1)) : 0;
    size_t delta_bytes = 0, dq_bytes = 0, fwd_bytes = 0;
    if (!bwd) fwd_bytes = align256(mfa_cuda_fast_fwd_workspace(a, st->sm_major));
    if (bwd) {
        delta_bytes = align256(sizeof(float) * (size_t)(pr->p.batch * pr->p.heads_q * pr->p.seqlen_q));
        a->dq_pitch = mfa_cuda_fast_dq_pitch(a);
        const int64_t tokens = pr->varlen ? pr->p.seqlen_q : pr->p.batch * pr->p.seqlen_q;
        dq_bytes = sizeof(float) * (size_t)(tokens * pr->p.heads_q * a->dq_pitch);
    }
    mfa_error_t err = workspace(ctx, cu_bytes + delta_bytes + dq_bytes + fwd_bytes + 256);
    if (err) return err;
    char *ws = st->ws;
    if (pr->varlen) {
        int32_t *cu = (int32_t *)ws;
        const size_t n = (size_t)(pr->p.batch + 1);
        /* pageable host memory: the copy is staged before cudaMemcpyAsync returns, so the
         * caller may reuse its arrays at once */
        CUDA_TRY(ctx, MFA_ERROR_EXECUTION_FAILED,
                 cudaMemcpyAsync(cu, pr->p.cu_seqlens_q, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_of(ctx)));
        CUDA_TRY(ctx, MFA_ERROR_EXECUTION_FAILED,
                 cudaMemcpyAsync(cu + n, pr->p.cu_seqlens_kv, n * sizeof(int32_t), cudaMemcpyHostToDevice,
                                 stream_of(ctx)));
        a->cu_q = cu, a->cu_k = cu + n;
    }
    if (fwd_bytes) a->fwd_ws = ws + cu_bytes;
    if (bwd) {
        a->delta = (float *)(ws + cu_bytes);
        a->dq_accum = (float *)(ws + cu_bytes + delta_bytes);
    }
    return MFA_SUCCESS;
}

static mfa_error_t run(mfa_context *ctx, const mfa_problem_t *pr, bool bwd) {
    cuda_state *st = ctx->backend_state;
    int prev;
    mfa_error_t err = enter(ctx, &prev);
    if (err) return err;
    const cudaStream_t s = stream_of(ctx);
    mfa_cuda_args_t a;
    cudaError_t e = cudaEventRecord(st->ev_start, s);
    if (e == cudaSuccess && (err = setup(ctx, pr, &a, bwd)) != MFA_SUCCESS) {
        leave(ctx, prev);
        return err;
    }
    bool taken = false;
    if (e == cudaSuccess && !bwd) {
        e = mfa_cuda_fast_fwd(&a, s, st->sm_major, &taken);
        if (e == cudaSuccess && !taken) e = mfa_cuda_generic_fwd(&a, s);
    } else if (e == cudaSuccess) {
        e = mfa_cuda_fast_bwd(&a, s, st->sm_major, &taken); /* runs its own delta pass */
        if (e == cudaSuccess && !taken) e = mfa_cuda_bwd_delta(&a, s, true);
        if (e == cudaSuccess && !taken) e = mfa_cuda_generic_bwd(&a, s, true, true);
    }
    if (e == cudaSuccess) e = cudaEventRecord(st->ev_stop, s);
    leave(ctx, prev);
    st->timed = e == cudaSuccess;
    if (e != cudaSuccess)
        return say(ctx, MFA_ERROR_EXECUTION_FAILED, "cuda: %s launch failed: %s (%s)", bwd ? "backward" : "forward",
                   cudaGetErrorName(e), cudaGetErrorString(e));
    return MFA_SUCCESS;
}

static mfa_error_t cuda_fwd(mfa_context *ctx, const mfa_problem_t *pr) { return run(ctx, pr, false); }
static mfa_error_t cuda_bwd(mfa_context *ctx, const mfa_problem_t *pr) { return run(ctx, pr, true); }

static const mfa_backend_t cuda_backend = {
    .interface_version = MFA_BACKEND_INTERFACE_VERSION,
    .name = "cuda",
    .max_head_dim = 256,
    .init = cuda_init,
    .destroy = cuda_destroy,
    .fwd = cuda_fwd,
    .bwd = cuda_bwd,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .set_stream = cuda_set_stream,
    .synchronize = cuda_synchronize,
    .copy = cuda_copy,
    .gpu_latency = cuda_gpu_latency,
};

/* The plugin's one export, looked up by libmfa.so (src/context.c). */
__attribute__((visibility("default"))) const mfa_backend_t *mfa_plugin_backend(void);
const mfa_backend_t *mfa_plugin_backend(void) { return &cuda_backend; }
