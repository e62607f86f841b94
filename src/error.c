/* error.c — status strings (generated from MFA_ERROR_LIST) and per-context error messages. */
#include <stdio.h>
#include <string.h>

#include "context.h"

/* Messages of failed mfa_create_context* calls, which have no context to hold them. */
static _Thread_local char create_error[512];

const char *mfa_error_string(mfa_error_t error) {
    switch (error) {
#define MFA_ERROR_CASE_(name, value, text) \
    case value: return text;
        MFA_ERROR_LIST(MFA_ERROR_CASE_)
#undef MFA_ERROR_CASE_
    default: return "unknown error";
    }
}

mfa_error_t mfa_set_error(mfa_context *ctx, mfa_error_t code, const char *fmt, ...) {
    char *dst = ctx ? ctx->last_error : create_error;
    size_t size = ctx ? sizeof ctx->last_error : sizeof create_error;
    va_list args;
    va_start(args, fmt);
    vsnprintf(dst, size, fmt, args);
    va_end(args);
    return code;
}

const char *mfa_last_error_message(mfa_context_t handle) {
    if (!handle) return create_error;
    mfa_context *ctx = mfa_context_from_handle(handle);
    return ctx ? ctx->last_error : "not a live mfa context";
}
