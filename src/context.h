/* context.h — what a context and a buffer are inside the library.
 *
 * A context owns its backend, thread count, backend state, every buffer created on it, and the
 * last error message. There are no hidden globals: everything a call needs hangs off here. */
#ifndef MFA_CONTEXT_H
#define MFA_CONTEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "mfa.h"

struct mfa_backend;
typedef struct mfa_buffer mfa_buffer;

typedef struct mfa_context {
    uint32_t magic; /* MFA_CONTEXT_MAGIC while alive: catches use after destroy */
    const struct mfa_backend *backend;
    void *backend_state;
    void *plugin; /* dlopen handle of a backend plugin (libmfa_cuda.so), or NULL */
    int32_t device;
    int32_t num_threads;
    mfa_buffer *buffers; /* every live buffer of this context (freed with it) */
    char description[160];
    char last_error[512];
    void *stream; /* GPU backends: the stream calls are enqueued on (cudaStream_t); NULL = default */
} mfa_context;

struct mfa_buffer {
    uint32_t magic; /* MFA_BUFFER_MAGIC while alive */
    mfa_context *ctx;
    void *data;
    size_t size;
    bool owned; /* allocated by the library (freed with the buffer) */
    mfa_buffer *prev, *next;
};

#define MFA_CONTEXT_MAGIC 0x6d666163u /* "mfac" */
#define MFA_BUFFER_MAGIC 0x6d666162u  /* "mfab" */

/* Records a formatted message on ctx (may be NULL: then the thread's create-context slot) and
 * returns code, so call sites read `return mfa_set_error(ctx, MFA_ERROR_..., "...", ...);`. */
mfa_error_t mfa_set_error(mfa_context *ctx, mfa_error_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The context behind a public handle, or NULL if the handle is not a live context. */
mfa_context *mfa_context_from_handle(mfa_context_t handle);

/* The buffer behind a public handle, or NULL if it is not a live buffer. */
mfa_buffer *mfa_buffer_from_handle(mfa_buffer_t handle);
/* Unlinks and frees a live buffer (and its memory when owned). */
void mfa_buffer_free(mfa_buffer *b);

#endif
