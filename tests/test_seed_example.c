/* test_seed_example.c — the seed README's C example, written against mfa.h with the seed's
 * calls unchanged (context, buffers, mfa_attention_forward with FP32 and then FP16 precision),
 * checked against the float64 reference backend. Also: multi-head + causal, each transpose
 * flag (a transposed copy must give the same output), and output_precision honoured. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h" /* internal: f16 conversion to fill FP16 buffers */
#include "mfa.h"

static int failures;
#define EXPECT(cond, ...)                             \
    do {                                              \
        if (!(cond)) {                                \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                      \
            printf("\n");                             \
            failures++;                               \
        }                                             \
    } while (0)

static float uniform(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*state >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

/* Float64 reference through the full API: [batch, heads, seq, dim] f32 in, f32 out. */
static void reference(const float *q, const float *k, const float *v, float *o, int batch, int seq_q, int seq_kv,
                      int heads, int dim, bool causal) {
    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = MFA_BACKEND_REFERENCE;
    mfa_context_t ref;
    mfa_create_context_ex(&ref, &opt);
    mfa_attention_params_t p;
    mfa_attention_params_init(&p);
    p.batch = batch, p.seqlen_q = seq_q, p.seqlen_kv = seq_kv, p.heads_q = p.heads_kv = heads;
    p.head_dim_qk = p.head_dim_v = dim;
    p.mask = causal ? MFA_MASK_CAUSAL : MFA_MASK_NONE;
    /* [batch, heads, seq, dim] expressed as [batch, seq, head, dim] strides */
    mfa_tensor_t *t[4] = {&p.q, &p.k, &p.v, &p.o};
    const void *data[4] = {q, k, v, o};
    for (int i = 0; i < 4; i++) {
        const int seq = i == 0 || i == 3 ? seq_q : seq_kv;
        t[i]->data = (void *)data[i];
        t[i]->dtype = MFA_DTYPE_F32;
        t[i]->stride[0] = (int64_t)heads * seq * dim, t[i]->stride[1] = dim;
        t[i]->stride[2] = (int64_t)seq * dim, t[i]->stride[3] = 1;
    }
    mfa_error_t err = mfa_attention_fwd(ref, &p);
    EXPECT(err == MFA_SUCCESS, "reference failed: %s", mfa_last_error_message(ref));
    mfa_destroy_context(ref);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
    }
    return worst;
}

/* The seed README's example, FP32 then FP16: one batch, one head. */
static void seed_readme_example(void) {
    const uint32_t seq_len = 128;
    const uint16_t head_dim = 64;
    const size_t count = (size_t)seq_len * head_dim, buffer_size = count * sizeof(float);

    mfa_context_t context;
    mfa_create_context(&context);

    mfa_buffer_t q_buffer, k_buffer, v_buffer, o_buffer;
    mfa_create_buffer(context, buffer_size, &q_buffer);
    mfa_create_buffer(context, buffer_size, &k_buffer);
    mfa_create_buffer(context, buffer_size, &v_buffer);
    mfa_create_buffer(context, buffer_size, &o_buffer);

    uint64_t rng = 1;
    float *host[3] = {mfa_buffer_contents(q_buffer), mfa_buffer_contents(k_buffer), mfa_buffer_contents(v_buffer)};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < count; i++) host[t][i] = uniform(&rng);
    float *expect = malloc(buffer_size);
    reference(host[0], host[1], host[2], expect, 1, seq_len, seq_len, 1, head_dim, false);

    /* Run attention (verbatim argument list of the README, FP32 precision) */
    int status = mfa_attention_forward(context, q_buffer, k_buffer, v_buffer, o_buffer, 1, seq_len, seq_len, 1,
                                       head_dim, 1.0f / sqrtf(head_dim), false, 2, 2, 2, // FP32 precision
                                       false, false, false, false);
    EXPECT(status == MFA_SUCCESS, "FP32 forward: %s", mfa_last_error_message(context));
    double err = max_abs_diff(mfa_buffer_contents(o_buffer), expect, count);
    EXPECT(err < 1e-5, "FP32 seed example max error %g", err);
    printf("seed example FP32: max |err| %.3g\n", err);

    /* The README's Rust example uses 0, 0, 0: FP16 everywhere. Fill FP16 inputs in place. */
    for (int t = 0; t < 3; t++) {
        uint16_t *h = (uint16_t *)host[t];
        for (size_t i = 0; i < count; i++) h[i] = mfa_f32_to_f16(host[t][i]);
    }
    float *rounded[3];
    for (int t = 0; t < 3; t++) {
        rounded[t] = malloc(buffer_size);
        for (size_t i = 0; i < count; i++) rounded[t][i] = mfa_f16_to_f32(((uint16_t *)host[t])[i]);
    }
    reference(rounded[0], rounded[1], rounded[2], expect, 1, seq_len, seq_len, 1, head_dim, false);
    status = mfa_attention_forward(context, q_buffer, k_buffer, v_buffer, o_buffer, 1, seq_len, seq_len, 1, head_dim,
                                   1.0f / sqrtf(head_dim), false, 0, 0, 0, // precision: FP16
                                   false, false, false, false);
    EXPECT(status == MFA_SUCCESS, "FP16 forward: %s", mfa_last_error_message(context));
    const uint16_t *out16 = mfa_buffer_contents(o_buffer);
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        const double d = fabs((double)mfa_f16_to_f32(out16[i]) - expect[i]);
        const double tol = 1e-3 + fabs(expect[i]) * 0x1p-10; /* one fp16 rounding of the output */
        if (!(d <= tol) && bad++ < 3) printf("  fp16 element %zu: error %g > %g\n", i, d, tol);
    }
    EXPECT(bad == 0, "FP16 seed example: %zu elements out of tolerance", bad);
    printf("seed example FP16: %zu elements out of tolerance\n", bad);

    for (int t = 0; t < 3; t++) free(rounded[t]);
    free(expect);
    mfa_destroy_buffer(q_buffer);
    mfa_destroy_buffer(k_buffer);
    mfa_destroy_buffer(v_buffer);
    mfa_destroy_buffer(o_buffer);
    mfa_destroy_context(context);
}

/* [batch*heads][seq][dim] -> [batch*heads][dim][seq] */
static void transpose_slices(const float *src, float *dst, int slices, int seq, int dim) {
    for (int s = 0; s < slices; s++)
        for (int i = 0; i < seq; i++)
            for (int d = 0; d < dim; d++) dst[((size_t)s * dim + d) * seq + i] = src[((size_t)s * seq + i) * dim + d];
}

/* Multi-head, causal, seq_q != seq_kv, every transpose flag, wrapped caller memory. */
static void seed_multihead_causal_transposed(void) {
    const int B = 2, H = 3, SQ = 37, SK = 53, D = 24;
    const size_t nq = (size_t)B * H * SQ * D, nk = (size_t)B * H * SK * D;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *o = malloc(nq * 4), *expect = malloc(nq * 4);
    float *qt = malloc(nq * 4), *kt = malloc(nk * 4), *vt = malloc(nk * 4), *ot = malloc(nq * 4), *back = malloc(nq * 4);
    uint64_t rng = 7;
    for (size_t i = 0; i < nq; i++) q[i] = uniform(&rng);
    for (size_t i = 0; i < nk; i++) k[i] = uniform(&rng), v[i] = uniform(&rng);
    reference(q, k, v, expect, B, SQ, SK, H, D, true);
    transpose_slices(q, qt, B * H, SQ, D);
    transpose_slices(k, kt, B * H, SK, D);
    transpose_slices(v, vt, B * H, SK, D);

    mfa_context_t ctx;
    mfa_create_context(&ctx);
    for (int flags = 0; flags < 16; flags++) {
        const bool tq = flags & 1, tk = flags & 2, tv = flags & 4, to = flags & 8;
        mfa_buffer_t bq, bk, bv, bo;
        mfa_buffer_from_ptr(ctx, tq ? qt : q, nq * 4, &bq);
        mfa_buffer_from_ptr(ctx, tk ? kt : k, nk * 4, &bk);
        mfa_buffer_from_ptr(ctx, tv ? vt : v, nk * 4, &bv);
        mfa_buffer_from_ptr(ctx, to ? ot : o, nq * 4, &bo);
        memset(to ? ot : o, 0xff, nq * 4); /* NaN poison */
        mfa_error_t status = mfa_attention_forward(ctx, bq, bk, bv, bo, B, SQ, SK, H, D, 0.0f, true, 2, 2, 2, tq, tk,
                                                   tv, to);
        EXPECT(status == MFA_SUCCESS, "transpose flags %d: %s", flags, mfa_last_error_message(ctx));
        if (to) transpose_slices(ot, back, B * H, D, SQ); /* [dim][seq] back to [seq][dim] */
        const double err = max_abs_diff(to ? back : o, expect, nq);
        EXPECT(err < 1e-5, "multi-head causal, transpose q=%d k=%d v=%d o=%d: max error %g", tq, tk, tv, to, err);
        mfa_destroy_buffer(bq), mfa_destroy_buffer(bk), mfa_destroy_buffer(bv), mfa_destroy_buffer(bo);
    }
    printf("seed multi-head causal, all 16 transpose combinations: checked\n");

    /* output_precision is honoured: BF16 out from FP32 in. */
    mfa_buffer_t bq, bk, bv, bo;
    mfa_buffer_from_ptr(ctx, q, nq * 4, &bq), mfa_buffer_from_ptr(ctx, k, nk * 4, &bk);
    mfa_buffer_from_ptr(ctx, v, nk * 4, &bv), mfa_buffer_from_ptr(ctx, o, nq * 2, &bo);
    mfa_error_t status = mfa_attention_forward(ctx, bq, bk, bv, bo, B, SQ, SK, H, D, 0.0f, true, 2, 2, 1, false,
                                               false, false, false);
    EXPECT(status == MFA_SUCCESS, "bf16 output: %s", mfa_last_error_message(ctx));
    for (size_t i = 0; i < nq; i++) {
        const float got = mfa_bf16_to_f32(((uint16_t *)o)[i]);
        if (!(fabsf(got - expect[i]) <= 1e-6f + fabsf(expect[i]) * 0x1p-8f)) {
            EXPECT(0, "bf16 output element %zu: %g vs %g", i, got, expect[i]);
            break;
        }
    }
    mfa_destroy_context(ctx); /* frees the four wrapped-buffer handles (not the memory) */
    free(q), free(k), free(v), free(o), free(expect), free(qt), free(kt), free(vt), free(ot), free(back);
}

int main(void) {
    int major = -1, minor = -1, patch = -1;
    mfa_get_version(&major, &minor, &patch);
    EXPECT(major == MFA_VERSION_MAJOR && minor == MFA_VERSION_MINOR && patch == MFA_VERSION_PATCH,
           "version %d.%d.%d vs header", major, minor, patch);
    EXPECT(mfa_is_device_supported(), "no backend can run");
    EXPECT(!strcmp(mfa_error_string(MFA_ERROR_INVALID_ARGS), "invalid argument"), "error string");
    seed_readme_example();
    seed_multihead_causal_transposed();
    printf("%s: %d failure%s\n", failures ? "FAILED" : "PASSED", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
