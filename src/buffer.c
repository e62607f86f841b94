/* buffer.c — seed-compatible buffers: library-allocated memory or a wrapped caller pointer.
 * Every buffer is linked into its context so destroying the context frees what is left. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "context.h"

static void link_buffer(mfa_context *ctx, mfa_buffer *b) {
    b->next = ctx->buffers;
    if (ctx->buffers) ctx->buffers->prev = b;
    ctx->buffers = b;
}

static void unlink_buffer(mfa_buffer *b) {
    if (b->prev) b->prev->next = b->next;
    else b->ctx->buffers = b->next;
    if (b->next) b->next->prev = b->prev;
}

static mfa_error_t new_buffer(mfa_context_t handle, void *data, size_t size, bool owned,
                              mfa_buffer_t *out, const char *fn) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    if (!handle) return mfa_set_error(NULL, MFA_ERROR_NULL_POINTER, "%s: context is NULL", fn);
    if (!ctx) return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "%s: context %p is not a live mfa context", fn, handle);
    if (!out) return mfa_set_error(ctx, MFA_ERROR_NULL_POINTER, "%s: buffer (the output pointer) is NULL", fn);
    *out = NULL;
    if (size == 0) return mfa_set_error(ctx, MFA_ERROR_INVALID_ARGS, "%s: size_bytes=0; a buffer must hold at least one byte", fn);
    mfa_buffer *b = calloc(1, sizeof *b);
    if (!b) return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "%s: cannot allocate the buffer handle", fn);
    if (owned) {
        mfa_error_t err = MFA_SUCCESS;
        if (ctx->backend->alloc) {
            err = ctx->backend->alloc(ctx, size, &data);
        } else {
            size_t rounded = (size + 63) / 64 * 64; /* aligned_alloc wants a multiple of 64 */
            data = rounded >= size ? aligned_alloc(64, rounded) : NULL;
            if (data) memset(data, 0, size);
            else err = mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "%s: cannot allocate size_bytes=%zu", fn, size);
        }
        if (err != MFA_SUCCESS) {
            free(b);
            return err;
        }
    } else if (!data) {
        free(b);
        return mfa_set_error(ctx, MFA_ERROR_NULL_POINTER, "%s: data is NULL", fn);
    }
    b->magic = MFA_BUFFER_MAGIC;
    b->ctx = ctx;
    b->data = data;
    b->size = size;
    b->owned = owned;
    link_buffer(ctx, b);
    *out = b;
    return MFA_SUCCESS;
}

mfa_error_t mfa_create_buffer(mfa_context_t context, size_t size_bytes, mfa_buffer_t *buffer) {
    return new_buffer(context, NULL, size_bytes, true, buffer, "mfa_create_buffer");
}

mfa_error_t mfa_buffer_from_ptr(mfa_context_t context, void *data, size_t size_bytes,
                                mfa_buffer_t *buffer) {
    return new_buffer(context, data, size_bytes, false, buffer, "mfa_buffer_from_ptr");
}

mfa_buffer *mfa_buffer_from_handle(mfa_buffer_t handle) {
    mfa_buffer *b = handle;
    return b && b->magic == MFA_BUFFER_MAGIC ? b : NULL;
}

void *mfa_buffer_contents(mfa_buffer_t handle) {
    mfa_buffer *b = mfa_buffer_from_handle(handle);
    return b ? b->data : NULL;
}

void mfa_buffer_free(mfa_buffer *b) {
    unlink_buffer(b);
    if (b->owned) {
        if (b->ctx->backend->free) b->ctx->backend->free(b->ctx, b->data);
        else free(b->data);
    }
    b->magic = 0;
    free(b);
}

void mfa_destroy_buffer(mfa_buffer_t handle) {
    mfa_buffer *b = mfa_buffer_from_handle(handle);
    if (b) mfa_buffer_free(b);
}

/* Host <-> buffer copies: bounds-checked against the buffer, then the backend's copy (a device
 * transfer on GPU contexts) or memcpy. */
static mfa_error_t buffer_copy(mfa_buffer_t handle, size_t offset, void *host, size_t bytes, bool to_host,
                               const char *fn) {
    mfa_buffer *b = mfa_buffer_from_handle(handle);
    if (!handle) return mfa_set_error(NULL, MFA_ERROR_NULL_POINTER, "%s: buffer is NULL", fn);
    if (!b) return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "%s: buffer %p is not a live mfa buffer", fn, handle);
    mfa_context *ctx = b->ctx;
    if (bytes == 0) return MFA_SUCCESS;
    if (!host) return mfa_set_error(ctx, MFA_ERROR_NULL_POINTER, "%s: %s is NULL", fn, to_host ? "dst" : "src");
    if (offset > b->size || bytes > b->size - offset)
        return mfa_set_error(ctx, MFA_ERROR_OUT_OF_BOUNDS,
                             "%s: bytes [%zu, %zu + %zu) exceed the buffer's %zu bytes", fn, offset, offset, bytes,
                             b->size);
    char *at = (char *)b->data + offset;
    if (ctx->backend->copy) return ctx->backend->copy(ctx, to_host ? host : at, to_host ? at : host, bytes, to_host);
    memcpy(to_host ? host : at, to_host ? at : host, bytes);
    return MFA_SUCCESS;
}

mfa_error_t mfa_buffer_copy_from_host(mfa_buffer_t buffer, size_t offset, const void *src, size_t size_bytes) {
    return buffer_copy(buffer, offset, (void *)src, size_bytes, false, "mfa_buffer_copy_from_host");
}

mfa_error_t mfa_buffer_copy_to_host(mfa_buffer_t buffer, size_t offset, void *dst, size_t size_bytes) {
    return buffer_copy(buffer, offset, dst, size_bytes, true, "mfa_buffer_copy_to_host");
}
