/* bench.c — `mfa bench`: time attention on one backend and report GFLOP/s.
 *
 * With no options: the default grid on the default backend (mfa_create_context semantics):
 * fp32, batch 1, 8 heads, seq 2048, head_dim 64 and 128, full and causal, forward.
 * Timing: clock_gettime(CLOCK_MONOTONIC) around each call, `warmup` untimed calls, then the
 * median of `repeats` calls. FLOPs: 4 * B * H * pairs * D forward, where `pairs` is the exact
 * number of (query, key) pairs the mask visits (Sq * Skv for no mask); backward = 2.5x forward.
 * Progress goes to stderr, the table (or with --json one JSON array) to stdout. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "mfa.h"

enum { MAX_LIST = 16 };

typedef struct config {
    const char *backend;
    int64_t batch, heads, heads_kv, seq_kv; /* heads_kv, seq_kv: 0 = same as heads / seq */
    int64_t seqs[MAX_LIST], dims[MAX_LIST];
    int nseq, ndim;
    int32_t dtype;           /* MFA_CHECK_* */
    int32_t masks[3], nmask; /* MFA_MASK_* */
    int64_t wl, wr;          /* window */
    int fwd, bwd, threads, repeats, warmup, json;
} config_t;

static void usage(FILE *f) {
    fprintf(f, "usage: mfa bench [options]\n"
               "  --backend cpu|cuda|reference   default: MFA_BACKEND or cpu\n"
               "  --batch N --heads N --heads-kv N\n"
               "  --seq N[,N...] --seq-kv N      seq-kv defaults to seq\n"
               "  --dim N[,N...]                 head_dim (qk and v)\n"
               "  --dtype f32|f16|bf16           inputs and outputs\n"
               "  --mask none|causal|window:L,R  default: none and causal\n"
               "  --dir fwd|bwd|both             default fwd\n"
               "  --threads N --repeats N (<= 64) --warmup N\n"
               "  --json                         one JSON array on stdout instead of the table\n"
               "defaults: --batch 1 --heads 8 --seq 2048 --dim 64,128 --dtype f32 --repeats 5 "
               "--warmup 1\n");
}

static int parse_int(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < 0) return -1;
    *out = v;
    return 0;
}

static int parse_list(const char *s, int64_t *out, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == MAX_LIST || parse_int(tok, &out[*n]) || out[*n] == 0) return -1;
        (*n)++;
    }
    return *n ? 0 : -1;
}

/* Parses the option at argv[*i] (and its value, advancing *i); 0 or -1. */
static int parse_one(int argc, char **argv, int *i, config_t *c) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int64_t n = 0;
    if (strcmp(a, "--json") == 0) {
        c->json = 1;
        return 0;
    }
    if (!v) return -1;
    (*i)++;
    if (strcmp(a, "--backend") == 0) {
        if (mfa_check_backend_from_name(v) < 0) return -1;
        c->backend = v;
    } else if (strcmp(a, "--seq") == 0) {
        if (parse_list(v, c->seqs, &c->nseq)) return -1;
    } else if (strcmp(a, "--dim") == 0) {
        if (parse_list(v, c->dims, &c->ndim)) return -1;
    } else if (strcmp(a, "--dtype") == 0) {
        if (strcmp(v, "f32") == 0)
            c->dtype = MFA_CHECK_F32;
        else if (strcmp(v, "f16") == 0)
            c->dtype = MFA_CHECK_F16;
        else if (strcmp(v, "bf16") == 0)
            c->dtype = MFA_CHECK_BF16;
        else
            return -1;
    } else if (strcmp(a, "--mask") == 0) {
        c->nmask = 1;
        if (strcmp(v, "none") == 0)
            c->masks[0] = MFA_MASK_NONE;
        else if (strcmp(v, "causal") == 0)
            c->masks[0] = MFA_MASK_CAUSAL;
        else if (sscanf(v, "window:%lld,%lld", (long long *)&c->wl, (long long *)&c->wr) == 2 &&
                 c->wl >= -1 && c->wr >= -1)
            c->masks[0] = MFA_MASK_WINDOW;
        else
            return -1;
    } else if (strcmp(a, "--dir") == 0) {
        c->fwd = strcmp(v, "fwd") == 0 || strcmp(v, "both") == 0;
        c->bwd = strcmp(v, "bwd") == 0 || strcmp(v, "both") == 0;
        if (!c->fwd && !c->bwd) return -1;
    } else {
        if (parse_int(v, &n)) return -1;
        if (strcmp(a, "--batch") == 0 && n > 0)
            c->batch = n;
        else if (strcmp(a, "--heads") == 0 && n > 0)
            c->heads = n;
        else if (strcmp(a, "--heads-kv") == 0 && n > 0)
            c->heads_kv = n;
        else if (strcmp(a, "--seq-kv") == 0 && n > 0)
            c->seq_kv = n;
        else if (strcmp(a, "--threads") == 0)
            c->threads = (int)n;
        else if (strcmp(a, "--repeats") == 0 && n > 0)
            c->repeats = (int)n;
        else if (strcmp(a, "--warmup") == 0)
            c->warmup = (int)n;
        else
            return -1;
    }
    return 0;
}

/* 0 on success; otherwise the index of the offending argument. */
static int parse_args(int argc, char **argv, config_t *c) {
    for (int i = 1; i < argc; i++) {
        const int at = i;
        if (parse_one(argc, argv, &i, c)) return at;
    }
    return 0;
}

/* Exact number of (i, j) pairs the mask keeps (top-left alignment, as mfa's default). */
static double visited_pairs(int32_t mask, int64_t sq, int64_t sk, int64_t wl, int64_t wr) {
    double pairs = 0;
    for (int64_t i = 0; i < sq; i++) {
        int64_t lo = 0, hi = sk;
        if (mask == MFA_MASK_CAUSAL) hi = i + 1;
        if (mask == MFA_MASK_WINDOW) {
            if (wl >= 0) lo = i - wl;
            if (wr >= 0) hi = i + wr + 1;
        }
        lo = lo < 0 ? 0 : lo;
        hi = hi > sk ? sk : hi;
        if (hi > lo) pairs += (double)(hi - lo);
    }
    return pairs;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A random contiguous [batch, seq, heads, dim] tensor (values N(0, 1), or 0 for outputs). */
static void *alloc_tensor(mfa_tensor_t *t, int32_t dtype, int64_t b, int64_t s, int64_t h,
                          int64_t d, mfa_check_rng_t *rng) {
    const int64_t n = b * s * h * d;
    const size_t es = dtype == MFA_DTYPE_F32 ? 4 : 2;
    void *p = calloc((size_t)n, es);
    if (!p) return NULL;
    for (int64_t i = 0; rng && i < n; i++) {
        const float x = (float)mfa_check_rng_normal(rng);
        if (dtype == MFA_DTYPE_F32)
            ((float *)p)[i] = x;
        else
            ((uint16_t *)p)[i] = mfa_check_f32_to_half(x, dtype);
    }
    mfa_tensor_contiguous(t, p, dtype, s, h, d);
    return p;
}

/* Median ms of one direction; < 0 on failure (message printed). */
static double time_call(mfa_context_t ctx, const mfa_attention_params_t *p, int bwd,
                        const config_t *c) {
    double ms[64];
    const int reps = c->repeats < 64 ? c->repeats : 64;
    for (int r = -c->warmup; r < reps; r++) {
        const double t0 = now_ms();
        const mfa_error_t e = bwd ? mfa_attention_bwd(ctx, p) : mfa_attention_fwd(ctx, p);
        const double t1 = now_ms();
        if (e != MFA_SUCCESS) {
            fprintf(stderr, "mfa bench: %s failed: %s (%s)\n", bwd ? "backward" : "forward",
                    mfa_error_string(e), mfa_last_error_message(ctx));
            return -1;
        }
        if (r >= 0) ms[r] = t1 - t0;
    }
    qsort(ms, (size_t)reps, sizeof ms[0], cmp_double);
    return reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
}

static void mask_label(const config_t *c, int32_t mask, char *buf, size_t size) {
    if (mask == MFA_MASK_WINDOW)
        snprintf(buf, size, "window:%lld,%lld", (long long)c->wl, (long long)c->wr);
    else
        snprintf(buf, size, "%s", mask == MFA_MASK_CAUSAL ? "causal" : "none");
}

/* Runs one shape and mask in the asked directions, printing its rows. Returns 0 or -1. */
static int run_one(mfa_context_t ctx, const config_t *c, int64_t seq, int64_t dim, int32_t mask,
                   int *rows) {
    const int32_t dt = mfa_check_mfa_dtype(c->dtype);
    const int64_t B = c->batch, H = c->heads, Hk = c->heads_kv ? c->heads_kv : c->heads;
    const int64_t Sk = c->seq_kv ? c->seq_kv : seq;
    mfa_check_rng_t rng;
    mfa_check_rng_seed(&rng, 42);
    mfa_attention_params_t p;
    mfa_attention_params_init(&p);
    p.batch = B, p.seqlen_q = seq, p.seqlen_kv = Sk, p.heads_q = H, p.heads_kv = Hk;
    p.head_dim_qk = p.head_dim_v = dim;
    p.mask = mask;
    if (mask == MFA_MASK_WINDOW) p.window_left = c->wl, p.window_right = c->wr;
    void *mem[9] = {0};
    mem[0] = alloc_tensor(&p.q, dt, B, seq, H, dim, &rng);
    mem[1] = alloc_tensor(&p.k, dt, B, Sk, Hk, dim, &rng);
    mem[2] = alloc_tensor(&p.v, dt, B, Sk, Hk, dim, &rng);
    mem[3] = alloc_tensor(&p.o, dt, B, seq, H, dim, NULL);
    int ok = mem[0] && mem[1] && mem[2] && mem[3];
    if (c->bwd && ok) {
        mem[4] = p.lse = calloc((size_t)(B * H * seq), sizeof(float));
        mem[5] = alloc_tensor(&p.dout, dt, B, seq, H, dim, &rng);
        mem[6] = alloc_tensor(&p.dq, dt, B, seq, H, dim, NULL);
        mem[7] = alloc_tensor(&p.dk, dt, B, Sk, Hk, dim, NULL);
        mem[8] = alloc_tensor(&p.dv, dt, B, Sk, Hk, dim, NULL);
        ok = mem[4] && mem[5] && mem[6] && mem[7] && mem[8];
    }
    if (!ok) fprintf(stderr, "mfa bench: out of memory\n");
    const double fwd_flops =
        4.0 * (double)(B * H) * visited_pairs(mask, seq, Sk, c->wl, c->wr) * (double)dim;
    char mlabel[48], shape[96];
    mask_label(c, mask, mlabel, sizeof mlabel);
    snprintf(shape, sizeof shape, "(%lld, %lld/%lld, %lld/%lld, %lld)", (long long)B, (long long)H,
             (long long)Hk, (long long)seq, (long long)Sk, (long long)dim);
    for (int dir = 0; ok && dir < 2; dir++) {
        if (!(dir ? c->bwd : c->fwd)) continue;
        fprintf(stderr, "bench: %s %s %s %s ...\n", dir ? "bwd" : "fwd",
                mfa_check_dtype_name(c->dtype), shape, mlabel);
        if (dir && mfa_attention_fwd(ctx, &p) != MFA_SUCCESS) { /* o and lse for the backward */
            fprintf(stderr, "mfa bench: forward failed: %s\n", mfa_last_error_message(ctx));
            ok = 0;
            break;
        }
        const double ms = time_call(ctx, &p, dir, c);
        if (ms < 0) {
            ok = 0;
            break;
        }
        const double gflops = (dir ? 2.5 : 1.0) * fwd_flops / (ms * 1e6);
        const int threads = (int)mfa_context_num_threads(ctx);
        if (c->json)
            printf("%s\n  {\"backend\": \"%s\", \"description\": \"%s\", \"dtype\": \"%s\", "
                   "\"batch\": %lld, \"heads_q\": %lld, \"heads_kv\": %lld, \"seqlen_q\": %lld, "
                   "\"seqlen_kv\": %lld, \"head_dim\": %lld, \"mask\": \"%s\", \"direction\": "
                   "\"%s\", \"threads\": %d, \"ms\": %.4f, \"gflops\": %.2f}",
                   *rows ? "," : "", mfa_context_backend_name(ctx), mfa_context_description(ctx),
                   mfa_check_dtype_name(c->dtype), (long long)B, (long long)H, (long long)Hk,
                   (long long)seq, (long long)Sk, (long long)dim, mlabel, dir ? "bwd" : "fwd",
                   threads, ms, gflops);
        else
            printf("%-26s %-14s %-5s %-4s %8d %10.3f %10.1f\n", shape, mlabel,
                   mfa_check_dtype_name(c->dtype), dir ? "bwd" : "fwd", threads, ms, gflops);
        fflush(stdout);
        (*rows)++;
    }
    for (int i = 0; i < 9; i++) free(mem[i]);
    return ok ? 0 : -1;
}

int mfa_bench_main(int argc, char **argv) {
    config_t c = {.batch = 1,
                  .heads = 8,
                  .seqs = {2048},
                  .nseq = 1,
                  .dims = {64, 128},
                  .ndim = 2,
                  .masks = {MFA_MASK_NONE, MFA_MASK_CAUSAL},
                  .nmask = 2,
                  .wl = -1,
                  .wr = -1,
                  .fwd = 1,
                  .repeats = 5,
                  .warmup = 1};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    const int bad = parse_args(argc, argv, &c);
    if (bad || (c.heads_kv && c.heads % c.heads_kv)) {
        if (bad)
            fprintf(stderr, "mfa bench: bad option or value: %s%s%s\n", argv[bad],
                    bad + 1 < argc ? " " : "", bad + 1 < argc ? argv[bad + 1] : "");
        else
            fprintf(stderr, "mfa bench: --heads must be a multiple of --heads-kv\n");
        usage(stderr);
        return 2;
    }
    mfa_context_options_t o;
    mfa_context_options_init(&o);
    o.backend = mfa_check_backend_from_name(c.backend);
    o.num_threads = c.threads;
    mfa_context_t ctx = NULL;
    mfa_error_t e = mfa_create_context_ex(&ctx, &o);
    if (e != MFA_SUCCESS) {
        fprintf(stderr, "mfa bench: cannot create the context: %s (%s)\n", mfa_error_string(e),
                mfa_last_error_message(NULL));
        return 1;
    }
    fprintf(stderr, "bench: %s\n", mfa_context_description(ctx));
    if (c.json)
        printf("[");
    else
        printf("%-26s %-14s %-5s %-4s %8s %10s %10s\n", "shape (B, H/Hkv, Sq/Skv, D)", "mask",
               "dtype", "dir", "threads", "ms", "GFLOP/s");
    int rows = 0, rc = 0;
    for (int si = 0; si < c.nseq && !rc; si++)
        for (int di = 0; di < c.ndim && !rc; di++)
            for (int mi = 0; mi < c.nmask && !rc; mi++)
                rc = run_one(ctx, &c, c.seqs[si], c.dims[di], c.masks[mi], &rows);
    if (c.json) printf("\n]\n");
    mfa_destroy_context(ctx);
    return rc ? 1 : 0;
}
