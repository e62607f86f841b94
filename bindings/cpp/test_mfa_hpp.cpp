// test_mfa_hpp.cpp — the C++ wrapper (include/mfa.hpp) against the library's float64 reference
// backend and a small native reference: fresh random inputs every run (MFA_SEED replays one),
// outputs poisoned with NaN, forward and backward; exceptions with the library's message; RAII.
// Ends with "N passed, M failed".
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mfa.hpp"

static int passed, failed;

#define EXPECT(cond, ...)                                            \
    do {                                                             \
        if (cond) {                                                  \
            passed++;                                                \
        } else {                                                     \
            failed++;                                                \
            std::printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
            std::printf(__VA_ARGS__);                                \
            std::printf("\n");                                       \
        }                                                            \
    } while (0)

static uint64_t seed() {
    static uint64_t s = [] {
        const char *env = std::getenv("MFA_SEED");
        uint64_t v = env ? std::strtoull(env, nullptr, 10)
                         : (uint64_t)std::chrono::high_resolution_clock::now().time_since_epoch().count();
        std::printf("MFA_SEED=%llu\n", (unsigned long long)v);
        return v;
    }();
    return s;
}

static std::vector<float> random_vector(std::mt19937_64 &rng, size_t n) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto &x : v) x = u(rng);
    return v;
}

template <class T> static T from_float(float x);
template <> float from_float<float>(float x) { return x; }
template <> mfa::f16 from_float<mfa::f16>(float x) { return mfa::f16::from_float(x); }
template <> mfa::bf16 from_float<mfa::bf16>(float x) { return mfa::bf16::from_float(x); }
static double to_double(float x) { return x; }
static double to_double(mfa::f16 x) { return x.to_float(); }
static double to_double(mfa::bf16 x) { return x.to_float(); }

template <class T> static std::vector<T> convert(const std::vector<float> &x) {
    std::vector<T> out(x.size());
    for (size_t i = 0; i < x.size(); i++) out[i] = from_float<T>(x[i]);
    return out;
}
template <class T> static std::vector<T> nans(size_t n) {
    return convert<T>(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}
template <class T> static std::vector<double> doubles(const std::vector<T> &x) {
    std::vector<double> out;
    for (const T &v : x) out.push_back(to_double(v));
    return out;
}

// tests/check/tolerance.h: |x - r| <= atol * rms(ref) + rtol * |r|, infinities equal (its
// values without the score term, which the small random scores here keep below 1e-5).
static void expect_close(const std::string &what, const std::vector<double> &got, const std::vector<double> &ref,
                         int32_t dtype, bool backward) {
    const double eps = dtype == MFA_DTYPE_F16 ? 1.0 / 1024 : dtype == MFA_DTYPE_BF16 ? 1.0 / 128 : 0;
    const double rtol = dtype == MFA_DTYPE_F32 ? 2e-5 : (backward ? 12 : 1) * eps;
    const double atol = dtype == MFA_DTYPE_F32 ? 2e-5 : (backward ? 12 : 2) * eps;
    double sum = 0;
    size_t n = 0;
    for (double r : ref)
        if (std::isfinite(r)) sum += r * r, n++;
    const double rms_ref = std::sqrt(sum / (double)(n ? n : 1));
    const double rms = rms_ref > 0 ? rms_ref : 1.0; // all-zero reference: the inputs' scale
    size_t bad = 0;
    for (size_t i = 0; i < got.size() && i < ref.size(); i++) {
        const bool ok = std::isinf(ref[i]) ? got[i] == ref[i]
                                           : std::fabs(got[i] - ref[i]) <= atol * rms + rtol * std::fabs(ref[i]);
        if (!ok && bad++ < 5)
            std::printf("  %s: [%zu] got %g, reference %g (seed %llu)\n", what.c_str(), i, got[i], ref[i],
                        (unsigned long long)seed());
    }
    EXPECT(bad == 0 && got.size() == ref.size(), "%s: %zu of %zu elements out of tolerance", what.c_str(), bad,
           got.size());
}

struct shape {
    int64_t batch, sq, skv, hq, hkv, dqk, dv;
};

// Forward (with lse) and backward of one problem on ctx; returns o, lse, dq, dk, dv as doubles.
template <class In, class Out>
static std::vector<std::vector<double>> run(mfa::context &ctx, const shape &s, int32_t mask, int32_t align,
                                            bool dense_mask, uint64_t stream) {
    std::mt19937_64 rng(seed() ^ stream);
    const size_t nq = (size_t)(s.batch * s.sq * s.hq * s.dqk), nk = (size_t)(s.batch * s.skv * s.hkv * s.dqk);
    const size_t nv = (size_t)(s.batch * s.skv * s.hkv * s.dv), no = (size_t)(s.batch * s.sq * s.hq * s.dv);
    const std::vector<In> q = convert<In>(random_vector(rng, nq)), k = convert<In>(random_vector(rng, nk)),
                          v = convert<In>(random_vector(rng, nv));
    const std::vector<Out> dout = convert<Out>(random_vector(rng, no));
    std::vector<uint8_t> keep((size_t)(s.batch * s.sq * s.skv));
    for (auto &x : keep) x = (rng() % 10) < 7;
    std::vector<Out> o = nans<Out>(no), dq = nans<Out>(nq), dk = nans<Out>(nk), dv = nans<Out>(nv);
    std::vector<float> lse = nans<float>((size_t)(s.batch * s.hq * s.sq));

    mfa::params p;
    p.batch = s.batch, p.seqlen_q = s.sq, p.seqlen_kv = s.skv, p.heads_q = s.hq, p.heads_kv = s.hkv;
    p.head_dim_qk = s.dqk, p.head_dim_v = s.dv;
    p.q = mfa::contiguous(q.data(), s.sq, s.hq, s.dqk);
    p.k = mfa::contiguous(k.data(), s.skv, s.hkv, s.dqk);
    p.v = mfa::contiguous(v.data(), s.skv, s.hkv, s.dv);
    p.o = mfa::contiguous(o.data(), s.sq, s.hq, s.dv);
    p.lse = lse.data();
    p.mask = mask, p.mask_align = align;
    if (dense_mask) p.attn_mask = mfa::tensor(keep.data(), mfa::strides{{s.sq * s.skv, 0, s.skv, 1}});
    ctx.forward(p);
    p.dout = mfa::contiguous(dout.data(), s.sq, s.hq, s.dv);
    p.dq = mfa::contiguous(dq.data(), s.sq, s.hq, s.dqk);
    p.dk = mfa::contiguous(dk.data(), s.skv, s.hkv, s.dqk);
    p.dv = mfa::contiguous(dv.data(), s.skv, s.hkv, s.dv);
    ctx.backward(p);
    return {doubles(o), doubles(lse), doubles(dq), doubles(dk), doubles(dv)};
}

template <class In, class Out>
static void compare(const char *name, const shape &s, int32_t mask, int32_t align, bool dense, uint64_t stream) {
    mfa::context cpu(mfa::backend::cpu, 2), ref(mfa::backend::reference);
    const auto got = run<In, Out>(cpu, s, mask, align, dense, stream);
    const auto want = run<In, Out>(ref, s, mask, align, dense, stream);
    const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; i++)
        expect_close(std::string(name) + ": " + names[i], got[(size_t)i], want[(size_t)i],
                     i == 1 ? MFA_DTYPE_F32 : mfa::dtype_of<Out>::value, i >= 2);
}

// Native float64 causal (top-left) attention over BSHD float, GQA.
static std::vector<double> native_reference(const std::vector<float> &q, const std::vector<float> &k,
                                            const std::vector<float> &v, const shape &s) {
    std::vector<double> o((size_t)(s.batch * s.sq * s.hq * s.dv), 0.0);
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t h = 0; h < s.hq; h++)
            for (int64_t i = 0; i < s.sq; i++) {
                const int64_t kh = h / (s.hq / s.hkv), keys = std::min(i + 1, s.skv);
                std::vector<double> w((size_t)keys);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < keys; j++) {
                    double dot = 0;
                    for (int64_t d = 0; d < s.dqk; d++)
                        dot += (double)q[(size_t)(((b * s.sq + i) * s.hq + h) * s.dqk + d)] *
                               k[(size_t)(((b * s.skv + j) * s.hkv + kh) * s.dqk + d)];
                    w[(size_t)j] = dot / std::sqrt((double)s.dqk);
                    mx = std::max(mx, w[(size_t)j]);
                }
                for (auto &x : w) sum += (x = std::exp(x - mx));
                for (int64_t d = 0; d < s.dv; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < keys; j++)
                        acc += w[(size_t)j] * v[(size_t)(((b * s.skv + j) * s.hkv + kh) * s.dv + d)];
                    o[(size_t)(((b * s.sq + i) * s.hq + h) * s.dv + d)] = acc / sum;
                }
            }
    return o;
}

static void native() {
    const shape s{2, 19, 29, 4, 2, 24, 24};
    std::mt19937_64 rng(seed() ^ 100);
    const auto q = random_vector(rng, (size_t)(2 * 19 * 4 * 24)), k = random_vector(rng, (size_t)(2 * 29 * 2 * 24)),
               v = random_vector(rng, (size_t)(2 * 29 * 2 * 24));
    std::vector<float> o = nans<float>(q.size());
    mfa::context ctx(mfa::backend::cpu, 1);
    mfa::params p;
    p.batch = 2, p.seqlen_q = 19, p.seqlen_kv = 29, p.heads_q = 4, p.heads_kv = 2, p.head_dim_qk = p.head_dim_v = 24;
    p.q = mfa::contiguous(q.data(), 19, 4, 24), p.k = mfa::contiguous(k.data(), 29, 2, 24);
    p.v = mfa::contiguous(v.data(), 29, 2, 24), p.o = mfa::contiguous(o.data(), 19, 4, 24);
    p.mask = MFA_MASK_CAUSAL;
    ctx.forward(p);
    expect_close("causal vs native", doubles(o), native_reference(q, k, v, s), MFA_DTYPE_F32, false);
}

// The seed API through the wrapper: buffers, the 19-argument forward, buffer-backed tensors.
static void seed_api() {
    mfa::context ctx;
    const size_t n = 2 * 24 * 16;
    mfa::buffer q = ctx.create_buffer(n * 4), k = ctx.create_buffer(n * 4), v = ctx.create_buffer(n * 4);
    std::vector<float> out(n, NAN), want(n, NAN);
    mfa::buffer o = ctx.wrap(out.data(), n);
    std::mt19937_64 rng(seed() ^ 200);
    for (mfa::buffer *b : {&q, &k, &v}) {
        const auto x = random_vector(rng, n);
        std::memcpy(b->data(), x.data(), n * 4);
    }
    mfa::seed_forward a;
    a.batch_size = 1, a.seq_len_q = a.seq_len_kv = 24, a.num_heads = 2, a.head_dim = 16, a.causal = true;
    ctx.attention_forward(q, k, v, o, a);
    // the same problem through the full API on buffer-backed tensors of the same context
    mfa::params p;
    p.batch = 1, p.seqlen_q = p.seqlen_kv = 24, p.heads_q = p.heads_kv = 2, p.head_dim_qk = p.head_dim_v = 16;
    const mfa::strides bhsd = mfa::strides_bhsd(2, 24, 16);
    p.q = q.tensor(MFA_DTYPE_F32, 0, bhsd), p.k = k.tensor(MFA_DTYPE_F32, 0, bhsd), p.v = v.tensor(MFA_DTYPE_F32, 0, bhsd);
    p.o = mfa::tensor(want.data(), bhsd);
    p.mask = MFA_MASK_CAUSAL;
    mfa::context ref(mfa::backend::reference);
    try {
        ref.forward(p); // the buffers belong to ctx
        EXPECT(false, "a buffer of another context was accepted");
    } catch (const mfa::error &e) {
        EXPECT(e.code() == MFA_ERROR_WRONG_CONTEXT, "wrong-context code %d: %s", e.code(), e.what());
    }
    ctx.forward(p);
    expect_close("seed forward vs full API", doubles(out), doubles(want), MFA_DTYPE_F32, false);
}

template <class F> static void expect_error(const char *what, F call, mfa_error_t code, const std::string &prefix) {
    try {
        call();
        EXPECT(false, "%s: no exception", what);
    } catch (const mfa::error &e) {
        EXPECT(e.code() == code && e.message().compare(0, prefix.size(), prefix) == 0,
               "%s: got code %d, message \"%s\"", what, e.code(), e.message().c_str());
    }
}

static void errors() {
    mfa::context ctx(mfa::backend::cpu, 1);
    std::vector<float> q(4 * 12 * 8, 0.5f), kv(4 * 5 * 8, 0.5f), o(4 * 12 * 8, NAN);
    mfa::params p;
    p.batch = 1, p.seqlen_q = p.seqlen_kv = 4, p.heads_q = 12, p.heads_kv = 5, p.head_dim_qk = p.head_dim_v = 8;
    p.q = mfa::contiguous(q.data(), 4, 12, 8), p.k = mfa::contiguous(kv.data(), 4, 5, 8);
    p.v = mfa::contiguous(kv.data(), 4, 5, 8), p.o = mfa::contiguous(o.data(), 4, 12, 8);
    try {
        ctx.forward(p);
        EXPECT(false, "bad head counts accepted");
    } catch (const mfa::error &e) {
        EXPECT(std::string(e.what()) == "invalid argument: heads_q=12 is not a multiple of heads_kv=5", "what(): %s",
               e.what());
    }
    bool untouched = true;
    for (float x : o) untouched = untouched && std::isnan(x);
    EXPECT(untouched, "output written on error");
    EXPECT(!ctx.supported(p, MFA_DIRECTION_FWD), "supported() accepted bad head counts");
    expect_error("check_supported", [&] { ctx.check_supported(p, MFA_DIRECTION_FWD); }, MFA_ERROR_INVALID_ARGS,
                 "heads_q=12");
    p.heads_q = p.heads_kv = 1;
    p.q.data = nullptr;
    expect_error("null q", [&] { ctx.forward(p); }, MFA_ERROR_NULL_POINTER, "q.data is NULL");
    expect_error("backward without lse", [&] {
        p.q = mfa::contiguous(q.data(), 4, 1, 8);
        ctx.backward(p);
    }, MFA_ERROR_NULL_POINTER, "lse is NULL");
    mfa::buffer small = ctx.create_buffer(31 * 4);
    p.q = small.tensor(MFA_DTYPE_F32, 0, mfa::strides_bshd(4, 1, 8));
    expect_error("buffer too small", [&] { ctx.forward(p); }, MFA_ERROR_OUT_OF_BOUNDS,
                 "q: reaches bytes [0, 128) from byte_offset=0 but its buffer holds 124 bytes");
    expect_error("bad options", [] { mfa::context bad(mfa::options{mfa::backend::cpu, -1}); }, MFA_ERROR_INVALID_ARGS,
                 "options->num_threads=-1 is negative");
    expect_error("empty buffer", [&] { ctx.create_buffer(0); }, MFA_ERROR_INVALID_ARGS, "mfa_create_buffer: size_bytes=0");
    try {
        mfa::context cuda(mfa::backend::cuda);
        EXPECT(cuda.backend_name() == "cuda", "cuda context named %s", cuda.backend_name().c_str());
    } catch (const mfa::error &e) {
        EXPECT(e.code() == MFA_ERROR_DEVICE_NOT_SUPPORTED && !e.message().empty(), "cuda: %s", e.what());
    }
}

static void raii() {
    mfa::context a(mfa::backend::cpu, 1);
    mfa_context_t handle = a.get();
    mfa::context b(std::move(a));
    EXPECT(b.get() == handle && a.get() == nullptr, "move constructor");
    EXPECT(b.backend_name() == "cpu" && b.num_threads() == 1, "backend %s", b.backend_name().c_str());
    mfa::buffer x = b.create_buffer(64);
    mfa::buffer y;
    y = std::move(x);
    EXPECT(y.size() == 64 && x.get() == nullptr && y.as<float>()[0] == 0.0f, "buffer move");
    const float two[2] = {1.5f, 2.5f};
    float back[4] = {-1, -1, -1, -1};
    y.copy_from_host(4, two, 2);
    y.copy_to_host(0, back, 4);
    EXPECT(back[0] == 0 && back[1] == 1.5f && back[2] == 2.5f && back[3] == 0, "buffer copies");
    expect_error("copy past the end", [&] { y.copy_from_host(60, two, 2); }, MFA_ERROR_OUT_OF_BOUNDS,
                 "mfa_buffer_copy_from_host: bytes [60, 60 + 8) exceed the buffer's 64 bytes");
    b.set_stream(nullptr);
    b.synchronize();
    EXPECT(b.stream() == nullptr && b.gpu_latency() == 0.0, "stream calls on the cpu");
    EXPECT(mfa::version() == std::to_string(MFA_VERSION_MAJOR) + "." + std::to_string(MFA_VERSION_MINOR) + "." +
                                 std::to_string(MFA_VERSION_PATCH),
           "version %s", mfa::version().c_str());
    for (int bits = 0; bits < 65536; bits++) {
        const mfa::f16 h{(uint16_t)bits};
        const mfa::bf16 g{(uint16_t)bits};
        if (h.to_float() == h.to_float() && mfa::f16::from_float(h.to_float()).bits != bits) {
            EXPECT(false, "f16 %04x does not round-trip", bits);
            break;
        }
        if (g.to_float() == g.to_float() && mfa::bf16::from_float(g.to_float()).bits != bits) {
            EXPECT(false, "bf16 %04x does not round-trip", bits);
            break;
        }
    }
}

int main() {
    try {
        compare<float, float>("gqa causal bottom-right", shape{2, 37, 53, 6, 2, 40, 24}, MFA_MASK_CAUSAL,
                              MFA_ALIGN_BOTTOM_RIGHT, false, 1);
        compare<mfa::f16, mfa::bf16>("f16 in, bf16 out", shape{2, 33, 41, 2, 1, 64, 64}, MFA_MASK_NONE,
                                     MFA_ALIGN_TOP_LEFT, false, 2);
        compare<mfa::bf16, float>("bf16 in, dense bool mask broadcast over heads", shape{2, 50, 70, 4, 2, 32, 32},
                                  MFA_MASK_CAUSAL, MFA_ALIGN_TOP_LEFT, true, 3);
        compare<float, mfa::f16>("f32 in, f16 out, mqa", shape{1, 20, 30, 4, 1, 16, 16}, MFA_MASK_NONE,
                                 MFA_ALIGN_TOP_LEFT, false, 4);
        native();
        seed_api();
        errors();
        raii();
    } catch (const std::exception &e) {
        failed++;
        std::printf("FAIL: unexpected exception: %s\n", e.what());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
