#!/usr/bin/env python3
"""adapt_check.py — TEMPORARY: teaches tests/check/check.c to run a case on a device context.

The check harness (tests/check/, owned by its own issue) allocates host memory. On a CUDA
context every tensor pointer must be device memory, so for the context under test each array a
case uses (its whole allocation, guards and gaps included) is mirrored in a device buffer
(mfa_create_buffer + mfa_buffer_copy_from_host), the params point there, and after the call
(mfa_synchronize) every mirror is copied back, so all the harness's checks (sentinels, inputs
untouched, NaN poison, exact zeros) run unchanged on the host. bench/gpu/run.sh applies this to
the copy on the GPU machine when check.c does not do it yet; once check.c has the same code,
this script does nothing. Usage: adapt_check.py tests/check/check.c
"""
import sys

path = sys.argv[1]
src = open(path).read()
if "mfa_buffer_copy_from_host" in src:
    print("adapt_check: check.c already mirrors device cases")
    sys.exit(0)

helpers = r'''
/* ---- Device contexts: the arrays under test are mirrored in device buffers for the call ---- */
typedef struct mirror {
    mfa_check_array_t *a;
    mfa_buffer_t buf;
} mirror_t;

static int on_device(mfa_context_t ctx) { return strcmp(mfa_context_backend_name(ctx), "cuda") == 0; }

/* Mirrors every array *pt points into (whole allocation) and points *pt at the mirrors.
 * Returns the number of mirrors, or -1. */
static int to_device(run_t *r, mfa_context_t ctx, mfa_attention_params_t *pt, mirror_t *m) {
    struct {
        mfa_check_array_t *a;
        void **field;
    } map[] = {{&r->q, &pt->q.data},         {&r->k, &pt->k.data},    {&r->v, &pt->v.data},
               {&r->o, &pt->o.data},         {&r->lse, (void **)&pt->lse},
               {&r->blk, (void **)&pt->block_mask}, {&r->den, &pt->attn_mask.data},
               {&r->dout, &pt->dout.data},   {&r->dq, &pt->dq.data},  {&r->dk, &pt->dk.data},
               {&r->dv, &pt->dv.data}};
    int n = 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (!*map[i].field || !map[i].a->alloc) continue;
        mirror_t *x = &m[n];
        x->a = map[i].a;
        const size_t bytes = alloc_bytes(x->a);
        if (mfa_create_buffer(ctx, bytes, &x->buf) != MFA_SUCCESS) return -1;
        n++;
        if (mfa_buffer_copy_from_host(x->buf, 0, x->a->alloc, bytes) != MFA_SUCCESS) return -1;
        *map[i].field = (char *)mfa_buffer_contents(x->buf) + ((unsigned char *)x->a->data - x->a->alloc);
    }
    return n;
}

/* Copies the mirrors back over the host arrays and frees them; 0 on success. */
static int from_device(mirror_t *m, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (!bad && mfa_buffer_copy_to_host(m[i].buf, 0, m[i].a->alloc, alloc_bytes(m[i].a)) != MFA_SUCCESS)
            bad = 1;
        mfa_destroy_buffer(m[i].buf);
    }
    return bad;
}

'''
anchor = "static int direction("
assert anchor in src, "check.c changed: adapt by hand"
src = src.replace(anchor, helpers + anchor, 1)

call = "    e = bwd ? mfa_attention_bwd(ut, &pt) : mfa_attention_fwd(ut, &pt);\n"
assert call in src, "check.c changed: adapt by hand"
src = src.replace(call, r'''    mirror_t mir[11];
    const int dev = on_device(ut);
    const int nmir = dev ? to_device(r, ut, &pt, mir) : 0;
    if (nmir < 0) {
        say(r, "cannot mirror the case in device memory: %s\n", mfa_last_error_message(ut));
        return MFA_CHECK_FAIL;
    }
''' + call + r'''    if (dev) {
        const mfa_error_t se = mfa_synchronize(ut);
        if (e == MFA_SUCCESS) e = se;
        if (from_device(mir, nmir) && e == MFA_SUCCESS) e = MFA_ERROR_EXECUTION_FAILED;
    }
''', 1)
open(path, "w").write(src)
print("adapt_check: check.c now mirrors device cases")
