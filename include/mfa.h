/*
 * mfa.h — libmfa: exact (FlashAttention-style) attention behind one small C ABI.
 *
 * What this is: the one public header of libmfa. Attention is computed tiled, with an online
 * softmax, never materialising the seqlen_q x seqlen_kv matrix, on memory the caller already owns.
 * Backends: "cpu" (always present) and "cuda" (a plugin loaded at run time when asked for).
 *
 * Two API levels live here:
 *   1. The seed-compatible API of universal-metal-flash-attention: mfa_create_context,
 *      mfa_create_buffer, mfa_attention_forward (19 arguments) ... Same names, argument order,
 *      types and enum values, so programs written against that README compile unchanged.
 *   2. The full API: one params struct (pointers + element strides + sizes) covering multi-head,
 *      GQA/MQA, any strides, f32/f16/bf16, causal/window/block-sparse/dense masks, softcap,
 *      varlen batches, LSE, forward and backward.
 *
 * Example (full API, [batch, seq, heads, dim] fp32 tensors, causal):
 *
 *     mfa_context_t ctx;
 *     if (mfa_create_context(&ctx) != MFA_SUCCESS) return 1;
 *     mfa_attention_params_t p;
 *     mfa_attention_params_init(&p);
 *     p.batch = 2; p.seqlen_q = p.seqlen_kv = 512;
 *     p.heads_q = 8; p.heads_kv = 2;                      // GQA: 4 q heads per kv head
 *     p.head_dim_qk = p.head_dim_v = 64;
 *     mfa_tensor_contiguous(&p.q, q, MFA_DTYPE_F32, 512, 8, 64);
 *     mfa_tensor_contiguous(&p.k, k, MFA_DTYPE_F32, 512, 2, 64);
 *     mfa_tensor_contiguous(&p.v, v, MFA_DTYPE_F32, 512, 2, 64);
 *     mfa_tensor_contiguous(&p.o, o, MFA_DTYPE_F32, 512, 8, 64);
 *     p.mask = MFA_MASK_CAUSAL;
 *     if (mfa_attention_fwd(ctx, &p) != MFA_SUCCESS)
 *         fprintf(stderr, "%s\n", mfa_last_error_message(ctx));
 *     mfa_destroy_context(ctx);
 *
 * Errors are values: every call returns an mfa_error_t and, on failure, stores a message naming
 * the argument and the bad value, readable with mfa_last_error_message(ctx). The library never
 * prints, exits or aborts on user input, and writes nothing when it rejects a call.
 *
 * Threads: a context may be used by one thread at a time (calls on one context are not
 * synchronised: its last-error message is per context). Different contexts are independent and
 * may be used concurrently. Buffers belong to the context that created them.
 */
#ifndef MFA_H
#define MFA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(MFA_BUILDING_LIBRARY)
#define MFA_API __declspec(dllexport)
#elif defined(_WIN32)
#define MFA_API __declspec(dllimport)
#elif defined(MFA_BUILDING_LIBRARY)
#define MFA_API __attribute__((visibility("default")))
#else
#define MFA_API
#endif

/* ---- Version ------------------------------------------------------------------------------
 * Same major version => same ABI: structs only grow at their end and enum values are only
 * appended. mfa_get_version() reports the library actually loaded. */
#define MFA_VERSION_MAJOR 0
#define MFA_VERSION_MINOR 1
#define MFA_VERSION_PATCH 0
#define MFA_VERSION_NUMBER (MFA_VERSION_MAJOR * 10000 + MFA_VERSION_MINOR * 100 + MFA_VERSION_PATCH)

/* ---- Status codes -------------------------------------------------------------------------
 * 0..5 are the seed's values; new codes are appended, never renumbered. One list generates both
 * the values and mfa_error_string()'s text. mfa_error_t is an int (not an enum type) so that it
 * is ABI-identical to the seed's `int` return type in every language. */
#define MFA_ERROR_LIST(X)                                                                      \
    X(MFA_SUCCESS, 0, "success")                                                               \
    X(MFA_ERROR_INVALID_ARGS, 1, "invalid argument")                                           \
    X(MFA_ERROR_MEMORY_ALLOCATION, 2, "memory allocation failed")                              \
    X(MFA_ERROR_DEVICE_NOT_SUPPORTED, 3, "device or backend not supported")                    \
    X(MFA_ERROR_KERNEL_COMPILATION, 4, "kernel compilation failed")                            \
    X(MFA_ERROR_EXECUTION_FAILED, 5, "execution failed")                                       \
    X(MFA_ERROR_NULL_POINTER, 6, "required pointer is NULL")                                   \
    X(MFA_ERROR_UNSUPPORTED, 7, "valid request not supported by this backend")                 \
    X(MFA_ERROR_OUT_OF_BOUNDS, 8, "tensor extent overflows or exceeds its buffer")             \
    X(MFA_ERROR_WRONG_CONTEXT, 9, "buffer belongs to a different context")

typedef int mfa_error_t;
enum {
#define MFA_ERROR_ENUM_(name, value, text) name = value,
    MFA_ERROR_LIST(MFA_ERROR_ENUM_)
#undef MFA_ERROR_ENUM_
};

/* ---- Element types ------------------------------------------------------------------------
 * The seed's precision values (FP16=0, BF16=1, FP32=2) are the dtype values. BOOL is only valid
 * for the dense attention mask (one byte per element, nonzero = keep). */
typedef enum mfa_precision {
    MFA_PRECISION_FP16 = 0,
    MFA_PRECISION_BF16 = 1,
    MFA_PRECISION_FP32 = 2,
} mfa_precision_t;

enum {
    MFA_DTYPE_F16 = 0,
    MFA_DTYPE_BF16 = 1,
    MFA_DTYPE_F32 = 2,
    MFA_DTYPE_BOOL = 3,
};

/* ---- Handles ------------------------------------------------------------------------------
 * Opaque. Declared as void pointers exactly as in the seed API so that code declaring them
 * itself (`typedef void *mfa_context_t;`) links and compiles against this library. */
typedef void *mfa_context_t;
typedef void *mfa_buffer_t;

/* ======================================================================================== */
/* 1. Seed-compatible API                                                                    */
/* ======================================================================================== */

/* Creates a context on the default backend: the one named by the environment variable
 * MFA_BACKEND ("cpu" or "cuda") if set, otherwise "cpu". Threads: all online cores (or
 * MFA_NUM_THREADS). Returns MFA_SUCCESS and sets *context; on failure *context is NULL. */
MFA_API mfa_error_t mfa_create_context(mfa_context_t *context);

/* Destroys a context and every buffer it still owns, and its workspace (a context keeps the
 * scratch of its last calls for the next: on the cpu, the packed K/V of the largest recent call,
 * about 8 bytes per key per kv head per head dim). NULL is accepted and ignored. */
MFA_API void mfa_destroy_context(mfa_context_t context);

/* Allocates size_bytes (> 0) of memory the backend computes on: host memory on the cpu
 * backend. The memory is zero-filled, 64-byte aligned, and freed by mfa_destroy_buffer. */
MFA_API mfa_error_t mfa_create_buffer(mfa_context_t context, size_t size_bytes,
                                      mfa_buffer_t *buffer);

/* Wraps caller-owned memory [data, data + size_bytes) without copying; the caller keeps
 * ownership and must keep it alive until mfa_destroy_buffer. Calls given this buffer never
 * read or write outside that range (they fail with MFA_ERROR_OUT_OF_BOUNDS instead). */
MFA_API mfa_error_t mfa_buffer_from_ptr(mfa_context_t context, void *data, size_t size_bytes,
                                        mfa_buffer_t *buffer);

/* The buffer's memory, or NULL for a NULL buffer. */
MFA_API void *mfa_buffer_contents(mfa_buffer_t buffer);

/* Frees a buffer (and its memory if the library allocated it). NULL is accepted. */
MFA_API void mfa_destroy_buffer(mfa_buffer_t buffer);

/* The seed's forward call. Each operand is contiguous [batch, num_heads, seq, head_dim]; a
 * transpose flag means that operand's (batch, head) slice is stored [head_dim, seq] instead.
 *   q: [batch, num_heads, seq_len_q, head_dim]    k, v: [batch, num_heads, seq_len_kv, head_dim]
 *   out: [batch, num_heads, seq_len_q, head_dim]
 * input_precision applies to q, k, v; output_precision to out (honoured, unlike the seed);
 * intermediate_precision must be a valid precision and is otherwise advisory: accumulation is
 * fp32 always. softmax_scale <= 0 selects 1/sqrt(head_dim). causal is top-left aligned (row i
 * sees keys 0..i), as in PyTorch. Every buffer is checked against the extent it must hold. */
MFA_API mfa_error_t mfa_attention_forward(mfa_context_t context, mfa_buffer_t q, mfa_buffer_t k,
                                          mfa_buffer_t v, mfa_buffer_t out, uint32_t batch_size,
                                          uint32_t seq_len_q, uint32_t seq_len_kv,
                                          uint32_t num_heads, uint16_t head_dim,
                                          float softmax_scale, bool causal, int input_precision,
                                          int intermediate_precision, int output_precision,
                                          bool transpose_q, bool transpose_k, bool transpose_v,
                                          bool transpose_o);

/* Static text for a status code ("invalid argument"); "unknown error" for unknown values. */
MFA_API const char *mfa_error_string(mfa_error_t error);

/* The loaded library's version. NULL pointers are skipped. */
MFA_API void mfa_get_version(int *major, int *minor, int *patch);

/* True when at least one backend can run here. The cpu backend always can. */
MFA_API bool mfa_is_device_supported(void);

/* ======================================================================================== */
/* 2. Full API                                                                               */
/* ======================================================================================== */

/* ---- Contexts ------------------------------------------------------------------------- */
enum {
    MFA_BACKEND_AUTO = 0,      /* MFA_BACKEND environment variable, else cpu */
    MFA_BACKEND_CPU = 1,       /* tiled flash attention on the host, multithreaded */
    MFA_BACKEND_CUDA = 2,      /* libmfa_cuda plugin; DEVICE_NOT_SUPPORTED where absent */
    MFA_BACKEND_REFERENCE = 3, /* float64 naive attention: the oracle for tests (slow) */
};

typedef struct mfa_context_options {
    uint32_t struct_size; /* set by mfa_context_options_init; lets the struct grow */
    int32_t backend;      /* MFA_BACKEND_*; default AUTO */
    int32_t device;       /* device index for GPU backends; default 0 */
    int32_t num_threads;  /* cpu threads; 0 = MFA_NUM_THREADS env or all online cores */
} mfa_context_options_t;

/* Fills *options with the defaults above. */
MFA_API void mfa_context_options_init(mfa_context_options_t *options);

/* Creates a context with explicit options (NULL options = defaults). */
MFA_API mfa_error_t mfa_create_context_ex(mfa_context_t *context,
                                          const mfa_context_options_t *options);

/* The detailed message of the last failed call on this context ("" if none). The text stays
 * valid until the next call on the context. For a NULL context, the message of the last
 * failed mfa_create_context* call in this thread. */
MFA_API const char *mfa_last_error_message(mfa_context_t context);

/* Backend name ("cpu", "cuda", "reference") and a one-line description of what it runs on
 * (e.g. "cpu: scalar C, 2 threads"). NULL context gives "". */
MFA_API const char *mfa_context_backend_name(mfa_context_t context);
MFA_API const char *mfa_context_description(mfa_context_t context);
MFA_API int32_t mfa_context_num_threads(mfa_context_t context);

/* ---- Tensors ---------------------------------------------------------------------------
 * A tensor is a base pointer, an element type and element strides, in the fixed index order
 * [batch, seq, head, dim] for q/k/v/o/do/dq/dk/dv and [batch, head, q, kv] for attn_mask.
 * Strides may be any value (0 broadcasts, transposed slices are just other strides); the fast
 * paths want stride[3] == 1.
 * Memory: either `data` (a raw pointer) or `buffer` (an mfa_buffer_t, with the tensor starting
 * `byte_offset` bytes into it, and every element it reaches checked against the buffer size).
 * Setting both is an error. */
typedef struct mfa_tensor {
    void *data;
    mfa_buffer_t buffer;
    uint64_t byte_offset;
    int32_t dtype; /* MFA_DTYPE_* */
    int32_t reserved_;
    int64_t stride[4];
} mfa_tensor_t;

/* Fills *t for a contiguous [batch, seq, heads, dim] tensor at data (batch stride
 * seq*heads*dim). Returns t. */
MFA_API mfa_tensor_t *mfa_tensor_contiguous(mfa_tensor_t *t, void *data, int32_t dtype,
                                            int64_t seq, int64_t heads, int64_t dim);

/* ---- Masks -----------------------------------------------------------------------------
 * Query row i and key column j of one sequence (lengths sq, sk). The diagonal is
 * d = 0 for MFA_ALIGN_TOP_LEFT (PyTorch's is_causal) and d = sk - sq for
 * MFA_ALIGN_BOTTOM_RIGHT (FlashAttention's causal): the last query sees the last key.
 *   MFA_MASK_NONE    every j
 *   MFA_MASK_CAUSAL  j <= i + d
 *   MFA_MASK_WINDOW  i + d - window_left <= j <= i + d + window_right (-1 = unbounded side)
 * Independently of `mask`, a block-sparse map and a dense mask can be given; a pair (i, j) is
 * kept only if every given mask keeps it. A row that keeps nothing (masked out, or every
 * additive bias -inf) gives output 0, LSE -inf and zero gradients, never NaN. */
enum {
    MFA_MASK_NONE = 0,
    MFA_MASK_CAUSAL = 1,
    MFA_MASK_WINDOW = 2,
};
enum {
    MFA_ALIGN_TOP_LEFT = 0,
    MFA_ALIGN_BOTTOM_RIGHT = 1,
};

/* ---- The params struct -------------------------------------------------------------------
 * Always start from mfa_attention_params_init(): it sets struct_size and every default, so
 * fields appended in later versions keep their defaults for old callers.
 *
 * Layouts (strides in elements, index order as written):
 *   q:  [batch, seqlen_q,  heads_q,  head_dim_qk]    o, do, dq: like q but dq is head_dim_qk
 *   k:  [batch, seqlen_kv, heads_kv, head_dim_qk]    dk: like k
 *   v:  [batch, seqlen_kv, heads_kv, head_dim_v]     dv: like v;  o, do: [.., heads_q, head_dim_v]
 *   lse: float, contiguous [batch, heads_q, seqlen_q], natural log of the softmax denominator
 *        (varlen: [heads_q, total_q], i.e. batch 1 over the packed tokens)
 *   attn_mask: [batch, heads_q, seqlen_q, seqlen_kv] through its strides (0 = broadcast);
 *        varlen: [batch, heads_q, longest q sequence, longest kv sequence], per-sequence i, j
 *   block_mask: uint8 [batch, heads_q, block_mask_rows, block_mask_cols] through its strides;
 *        nonzero keeps block (r, c) = rows r*block_q.., keys c*block_kv..
 * GQA/MQA: heads_q must be a multiple of heads_kv; q head h uses kv head h / (heads_q/heads_kv).
 * Varlen: set cu_seqlens_q and cu_seqlens_kv (batch + 1 non-decreasing int32 offsets starting at
 * 0). Then seqlen_q / seqlen_kv are the packed totals (cu_seqlens_*[batch] must equal them),
 * tensors are indexed by packed token (stride[1]) and stride[0] is ignored. Masks are
 * per-sequence (row i, column j count from each sequence's start). */
typedef struct mfa_attention_params {
    uint32_t struct_size; /* set by mfa_attention_params_init */
    uint32_t reserved_;

    int64_t batch, seqlen_q, seqlen_kv;
    int64_t heads_q, heads_kv;
    int64_t head_dim_qk, head_dim_v;

    mfa_tensor_t q, k, v, o;
    float *lse; /* optional in forward (written when set); required input in backward */

    float softmax_scale; /* <= 0 selects 1/sqrt(head_dim_qk); applied before softcap and masks */
    float softcap;       /* > 0: scores become softcap * tanh(scores / softcap); 0 = off */

    int32_t mask;       /* MFA_MASK_* */
    int32_t mask_align; /* MFA_ALIGN_* for causal and window */
    int64_t window_left, window_right; /* MFA_MASK_WINDOW; -1 = unbounded; default -1 */

    const uint8_t *block_mask; /* optional block-sparse map; NULL = none */
    int64_t block_q, block_kv; /* block size in rows / keys (> 0 when block_mask is set) */
    int64_t block_mask_rows, block_mask_cols; /* declared shape: must be ceil(seqlen_q/block_q)
                                                 and ceil(seqlen_kv/block_kv) (varlen: of the
                                                 longest sequence) */
    int64_t block_mask_stride[4];             /* [batch, head, row, col]; 0 = broadcast */

    mfa_tensor_t attn_mask; /* optional dense mask (data or buffer set): MFA_DTYPE_BOOL keeps
                               nonzero; F32/F16/BF16 are added to the scaled scores */

    const int32_t *cu_seqlens_q, *cu_seqlens_kv; /* varlen offsets (host memory); NULL = off */

    /* Backward only: dO in, dQ/dK/dV out (overwritten, not accumulated). o and lse are the
     * forward's. deterministic: the same inputs give bitwise the same gradients. */
    mfa_tensor_t dout, dq, dk, dv;
    int32_t deterministic;
    int32_t allow_tf32; /* GPU fp32 inputs: 0 = exact fp32 math (default), 1 = TF32 allowed */
} mfa_attention_params_t;

/* Fills *p with defaults: struct_size, zero sizes and pointers, mask NONE, top-left alignment,
 * window (-1, -1), softmax_scale 0 (= 1/sqrt(head_dim_qk)), softcap 0, deterministic 0
 * (the cpu backend is always deterministic), allow_tf32 0. */
MFA_API void mfa_attention_params_init(mfa_attention_params_t *p);

/* Forward: writes o (and lse when set). Returns MFA_SUCCESS, or an error with a message naming
 * the argument and value; nothing is written on error. On the cpu backend the call returns
 * when the result is written. */
MFA_API mfa_error_t mfa_attention_fwd(mfa_context_t context, const mfa_attention_params_t *p);

/* Backward: reads q, k, v, o, dout, lse (from the forward); writes dq, dk, dv. */
MFA_API mfa_error_t mfa_attention_bwd(mfa_context_t context, const mfa_attention_params_t *p);

enum {
    MFA_DIRECTION_FWD = 0,
    MFA_DIRECTION_BWD = 1,
};

/* Runs exactly the checks of mfa_attention_fwd (direction MFA_DIRECTION_FWD) or
 * mfa_attention_bwd (MFA_DIRECTION_BWD) without computing. MFA_SUCCESS means the call would be
 * accepted. */
MFA_API mfa_error_t mfa_attention_supported(mfa_context_t context,
                                            const mfa_attention_params_t *p, int32_t direction);


/* ======================================================================================== */
/* 3. GPU contexts: memory, streams, synchronisation, timing                                */
/* ======================================================================================== */
/* On a CUDA context (MFA_BACKEND_CUDA, the libmfa_cuda plugin; sm_80 or newer):
 *   - Memory: every pointer the params struct carries (q, k, v, o, lse, dout, dq, dk, dv,
 *     attn_mask, block_mask) and every buffer is DEVICE memory of the context's device (from
 *     cudaMalloc, a framework's tensors, or mapped host memory the device can address). Only
 *     cu_seqlens_q / cu_seqlens_kv stay HOST memory: the library validates them on the host and
 *     copies them to the device itself, so they may be reused as soon as the call returns.
 *   - mfa_create_buffer allocates device memory (cudaMalloc, zero-filled; not managed memory),
 *     mfa_buffer_from_ptr wraps a device pointer, and mfa_buffer_contents returns the device
 *     pointer (not readable on the host: use mfa_buffer_copy_to_host).
 *   - mfa_attention_fwd / mfa_attention_bwd are asynchronous: they validate, enqueue the kernels
 *     on the context's stream and return. Errors found while the kernels run are reported by the
 *     next call that waits (mfa_synchronize, the buffer copies, mfa_get_gpu_latency). CUDA
 *     errors carry the CUDA message ("cudaErrorInvalidDevice: invalid device ordinal").
 *   - Where no CUDA driver or device exists, creating a CUDA context fails with
 *     MFA_ERROR_DEVICE_NOT_SUPPORTED and a message saying why; the cpu backend still works.
 * On the cpu (and reference) backends calls are synchronous, memory is host memory, the stream
 * is stored but unused, and these functions are plain copies or no-ops. */

/* Sets the stream (a cudaStream_t passed as void *, e.g. torch.cuda.current_stream().cuda_stream)
 * that later calls on this context are enqueued on; NULL is the device's default (legacy)
 * stream. Work already enqueued on the previous stream is waited for first, because the
 * context's workspace must never serve two streams at once. */
MFA_API mfa_error_t mfa_context_set_stream(mfa_context_t context, void *stream);

/* The stream set by mfa_context_set_stream (NULL: the default stream, or a NULL context). */
MFA_API void *mfa_context_get_stream(mfa_context_t context);

/* Waits until every call enqueued on the context's stream has finished. Returns MFA_SUCCESS, or
 * MFA_ERROR_EXECUTION_FAILED with the CUDA message when a kernel failed. No-op on the cpu. */
MFA_API mfa_error_t mfa_synchronize(mfa_context_t context);

/* Copies size_bytes from host memory src into the buffer at byte `offset` (copy_from_host), or
 * from the buffer into host memory dst (copy_to_host). Both are ordered after the work already
 * enqueued on the context's stream and return when the copy is complete. The range must lie
 * inside the buffer (MFA_ERROR_OUT_OF_BOUNDS otherwise). size_bytes 0 does nothing. */
MFA_API mfa_error_t mfa_buffer_copy_from_host(mfa_buffer_t buffer, size_t offset, const void *src,
                                              size_t size_bytes);
MFA_API mfa_error_t mfa_buffer_copy_to_host(mfa_buffer_t buffer, size_t offset, void *dst,
                                            size_t size_bytes);

/* The seed's timing query: device execution time of the last mfa_attention_fwd / _bwd /
 * mfa_attention_forward call on this context, in SECONDS, measured with CUDA events around its
 * kernels (waits for that call to finish). 0.0 on the cpu backend, for a NULL context, or when
 * no call has run yet. */
MFA_API double mfa_get_gpu_latency(mfa_context_t context);

#ifdef __cplusplus
}
#endif
#endif /* MFA_H */
