/*
 * mfa.hpp — header-only C++ wrapper over libmfa's C API (mfa.h): RAII handles and exceptions.
 *
 * What this is: ownership and error handling around the C calls, nothing more. A mfa::context
 * destroys its mfa_context_t, a mfa::buffer its mfa_buffer_t; a failed call throws mfa::error
 * carrying the status code and the library's message ("heads_q=12 is not a multiple of
 * heads_kv=5"). mfa::params *is* an mfa_attention_params_t (initialised by
 * mfa_attention_params_init), so every field of the header is set directly, as in C. Every
 * computation is the library's. C++11 or later.
 *
 *     mfa::context ctx(mfa::backend::cpu);             // or mfa::context(options) / ()
 *     mfa::params p;
 *     p.batch = 2; p.seqlen_q = p.seqlen_kv = 512;
 *     p.heads_q = 8; p.heads_kv = 2; p.head_dim_qk = p.head_dim_v = 64;
 *     p.q = mfa::contiguous(q.data(), 512, 8, 64);    // [batch, seq, heads, dim]; dtype from T
 *     p.k = mfa::contiguous(k.data(), 512, 2, 64);
 *     p.v = mfa::contiguous(v.data(), 512, 2, 64);
 *     p.o = mfa::contiguous(o.data(), 512, 8, 64);
 *     p.mask = MFA_MASK_CAUSAL;
 *     ctx.forward(p);                                 // throws mfa::error
 *
 * Lifetimes are the C API's: buffers belong to their context and must be destroyed before it
 * (declare them after the context); memory behind raw pointers must outlive the call. Raw
 * pointers are not bounds-checked (as in C); tensors made from an mfa::buffer are.
 */
#ifndef MFA_HPP
#define MFA_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "mfa.h"

namespace mfa {

/* ---- Errors ------------------------------------------------------------------------------ */

/* A failed call: code() is the mfa_error_t, message() the library's detailed text, what() both
 * ("invalid argument: heads_q=12 is not a multiple of heads_kv=5"). */
class error : public std::runtime_error {
  public:
    error(mfa_error_t code, const std::string &message)
        : std::runtime_error(std::string(mfa_error_string(code)) + ": " + message), code_(code), message_(message) {}
    mfa_error_t code() const noexcept { return code_; }
    const std::string &message() const noexcept { return message_; }

  private:
    mfa_error_t code_;
    std::string message_;
};

namespace detail {
/* Throws for a nonzero status with the message stored on `ctx` (NULL: this thread's last failed
 * context creation). */
inline void check(mfa_error_t code, mfa_context_t ctx) {
    if (code != MFA_SUCCESS) throw error(code, mfa_last_error_message(ctx));
}
} // namespace detail

/* ---- Element types ----------------------------------------------------------------------- */

/* IEEE binary16 and bfloat16 storage (bits), with round-to-nearest-even conversions. */
struct f16 {
    uint16_t bits;
    static f16 from_float(float x) {
        uint32_t b;
        std::memcpy(&b, &x, 4);
        const uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
        const int32_t exp = (int32_t)((b >> 23) & 0xffu);
        const uint32_t man = b & 0x7fffffu;
        if (exp == 0xff) return f16{(uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u))};
        const int32_t e = exp - 127 + 15;
        if (e >= 0x1f) return f16{(uint16_t)(sign | 0x7c00u)};
        uint32_t r, rem, half;
        if (e <= 0) {
            if (e < -10) return f16{sign};
            const uint32_t m = man | 0x800000u, shift = (uint32_t)(14 - e);
            r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        } else {
            r = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu, half = 0x1000u;
        }
        if (rem > half || (rem == half && (r & 1u))) r++;
        return f16{(uint16_t)(sign | r)};
    }
    float to_float() const {
        const uint32_t sign = (uint32_t)(bits & 0x8000u) << 16, exp = (bits >> 10) & 0x1fu, man = bits & 0x3ffu;
        uint32_t b;
        if (exp == 0) {
            float m = (float)man / 16777216.0f;
            std::memcpy(&b, &m, 4);
            b |= sign;
        } else if (exp == 0x1f) {
            b = sign | 0x7f800000u | (man << 13);
        } else {
            b = sign | ((exp + 112) << 23) | (man << 13);
        }
        float x;
        std::memcpy(&x, &b, 4);
        return x;
    }
};

struct bf16 {
    uint16_t bits;
    static bf16 from_float(float x) {
        uint32_t b;
        std::memcpy(&b, &x, 4);
        if (x != x) return bf16{(uint16_t)((b >> 16) | 0x40u)};
        return bf16{(uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16)};
    }
    float to_float() const {
        const uint32_t b = (uint32_t)bits << 16;
        float x;
        std::memcpy(&x, &b, 4);
        return x;
    }
};

/* MFA_DTYPE_* of an element type: float, mfa::f16, mfa::bf16, and bool / uint8_t (masks). */
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr int32_t value = MFA_DTYPE_F32; };
template <> struct dtype_of<f16> { static constexpr int32_t value = MFA_DTYPE_F16; };
template <> struct dtype_of<bf16> { static constexpr int32_t value = MFA_DTYPE_BF16; };
template <> struct dtype_of<bool> { static constexpr int32_t value = MFA_DTYPE_BOOL; };
template <> struct dtype_of<uint8_t> { static constexpr int32_t value = MFA_DTYPE_BOOL; };

/* ---- Tensors ----------------------------------------------------------------------------- */

using strides = std::array<int64_t, 4>; /* element strides, [batch, seq, head, dim] */

/* Strides of a contiguous [batch, seq, heads, dim] tensor (BSHD). */
inline strides strides_bshd(int64_t seq, int64_t heads, int64_t dim) {
    return strides{{seq * heads * dim, heads * dim, dim, 1}};
}
/* Strides, in [batch, seq, head, dim] order, of a contiguous [batch, heads, seq, dim] tensor. */
inline strides strides_bhsd(int64_t heads, int64_t seq, int64_t dim) {
    return strides{{heads * seq * dim, dim, seq * dim, 1}};
}

/* A tensor over raw memory (a device pointer on a CUDA context); the dtype follows T. */
template <class T> mfa_tensor_t tensor(T *data, const strides &s) {
    using E = typename std::remove_cv<T>::type;
    mfa_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = const_cast<E *>(data);
    t.dtype = dtype_of<E>::value;
    for (int i = 0; i < 4; i++) t.stride[i] = s[(size_t)i];
    return t;
}

/* A contiguous [batch, seq, heads, dim] tensor. */
template <class T> mfa_tensor_t contiguous(T *data, int64_t seq, int64_t heads, int64_t dim) {
    return tensor(data, strides_bshd(seq, heads, dim));
}

/* ---- Handles ----------------------------------------------------------------------------- */

enum class backend : int32_t {
    automatic = MFA_BACKEND_AUTO, /* MFA_BACKEND environment variable, else cpu */
    cpu = MFA_BACKEND_CPU,
    cuda = MFA_BACKEND_CUDA,
    reference = MFA_BACKEND_REFERENCE,
};

struct options {
    mfa::backend backend = mfa::backend::automatic;
    int32_t num_threads = 0; /* 0 = MFA_NUM_THREADS or all online cores */
    int32_t device = 0;
    options() = default;
    options(mfa::backend b, int32_t threads = 0, int32_t dev = 0) : backend(b), num_threads(threads), device(dev) {}
};

/* The params struct, initialised with mfa_attention_params_init; set fields as in C. */
struct params : mfa_attention_params_t {
    params() : mfa_attention_params_t() { mfa_attention_params_init(this); }
};

/* The seed forward's arguments after the buffers (see context::attention_forward). */
struct seed_forward {
    uint32_t batch_size = 1, seq_len_q = 0, seq_len_kv = 0, num_heads = 1;
    uint16_t head_dim = 0;
    float softmax_scale = 0.0f; /* <= 0 selects 1/sqrt(head_dim) */
    bool causal = false;        /* top-left aligned */
    int input_precision = MFA_PRECISION_FP32, intermediate_precision = MFA_PRECISION_FP32,
        output_precision = MFA_PRECISION_FP32;
    bool transpose_q = false, transpose_k = false, transpose_v = false, transpose_o = false;
};

class context;

/* An mfa_buffer_t, destroyed with this object (destroy it before its context). */
class buffer {
  public:
    buffer() = default;
    buffer(const buffer &) = delete;
    buffer &operator=(const buffer &) = delete;
    buffer(buffer &&other) noexcept : handle_(other.handle_), context_(other.context_), size_(other.size_) {
        other.handle_ = nullptr;
    }
    buffer &operator=(buffer &&other) noexcept {
        if (this != &other) {
            mfa_destroy_buffer(handle_);
            handle_ = other.handle_, context_ = other.context_, size_ = other.size_;
            other.handle_ = nullptr;
        }
        return *this;
    }
    ~buffer() { mfa_destroy_buffer(handle_); }

    mfa_buffer_t get() const noexcept { return handle_; }
    size_t size() const noexcept { return size_; }
    /* mfa_buffer_contents: host memory on the cpu backend, device memory on a CUDA context. */
    void *data() const noexcept { return mfa_buffer_contents(handle_); }
    template <class T> T *as() const noexcept { return static_cast<T *>(data()); }

    /* mfa_buffer_copy_from_host / _to_host: count elements between host memory and the buffer at
     * byte `offset` (a device transfer on a CUDA context, ordered after the enqueued work;
     * returns when done). Throws mfa::error (e.g. MFA_ERROR_OUT_OF_BOUNDS). */
    template <class T> void copy_from_host(size_t offset, const T *src, size_t count) {
        detail::check(mfa_buffer_copy_from_host(handle_, offset, src, count * sizeof(T)), context_);
    }
    template <class T> void copy_to_host(size_t offset, T *dst, size_t count) const {
        detail::check(mfa_buffer_copy_to_host(handle_, offset, dst, count * sizeof(T)), context_);
    }

    /* A tensor over this buffer from byte_offset on: the library checks the call's reach against
     * the buffer's size and that it belongs to the calling context. */
    mfa_tensor_t tensor(int32_t dtype, uint64_t byte_offset, const strides &s) const {
        mfa_tensor_t t;
        std::memset(&t, 0, sizeof t);
        t.buffer = handle_;
        t.byte_offset = byte_offset;
        t.dtype = dtype;
        for (int i = 0; i < 4; i++) t.stride[i] = s[(size_t)i];
        return t;
    }

  private:
    friend class context;
    buffer(mfa_buffer_t handle, mfa_context_t context, size_t size) : handle_(handle), context_(context), size_(size) {}
    mfa_buffer_t handle_ = nullptr;
    mfa_context_t context_ = nullptr; /* where the library records a failed copy's message */
    size_t size_ = 0;
};

/* An mfa_context_t, destroyed with this object. Used by one thread at a time. */
class context {
  public:
    /* mfa_create_context: the default backend (MFA_BACKEND, else cpu), all cores. */
    context() { detail::check(mfa_create_context(&handle_), nullptr); }
    /* mfa_create_context_ex on `b` with num_threads cpu threads (0 = all cores). */
    explicit context(mfa::backend b, int32_t num_threads = 0, int32_t device = 0)
        : context(options(b, num_threads, device)) {}
    /* mfa_create_context_ex. */
    explicit context(const options &o) {
        mfa_context_options_t opt;
        mfa_context_options_init(&opt);
        opt.backend = (int32_t)o.backend;
        opt.device = o.device;
        opt.num_threads = o.num_threads;
        detail::check(mfa_create_context_ex(&handle_, &opt), nullptr);
    }
    context(const context &) = delete;
    context &operator=(const context &) = delete;
    context(context &&other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
    context &operator=(context &&other) noexcept {
        if (this != &other) {
            mfa_destroy_context(handle_);
            handle_ = other.handle_;
            other.handle_ = nullptr;
        }
        return *this;
    }
    ~context() { mfa_destroy_context(handle_); }

    mfa_context_t get() const noexcept { return handle_; }
    std::string backend_name() const { return mfa_context_backend_name(handle_); }
    std::string description() const { return mfa_context_description(handle_); }
    int32_t num_threads() const { return mfa_context_num_threads(handle_); }

    /* Writes o (and lse when set); nothing is written when it throws. */
    void forward(const mfa_attention_params_t &p) { detail::check(mfa_attention_fwd(handle_, &p), handle_); }
    /* Reads q, k, v, o, dout, lse; writes dq, dk, dv. */
    void backward(const mfa_attention_params_t &p) { detail::check(mfa_attention_bwd(handle_, &p), handle_); }
    /* The checks of the call in `direction` (MFA_DIRECTION_*), without computing: throws the
     * error the call would. */
    void check_supported(const mfa_attention_params_t &p, int32_t direction) {
        detail::check(mfa_attention_supported(handle_, &p, direction), handle_);
    }
    /* The same as a yes/no answer. */
    bool supported(const mfa_attention_params_t &p, int32_t direction) noexcept {
        return mfa_attention_supported(handle_, &p, direction) == MFA_SUCCESS;
    }

    /* mfa_context_set_stream: later calls are enqueued on `stream` (a cudaStream_t; nullptr is
     * the device's default stream). Stored but unused on the cpu backend. */
    void set_stream(void *stream) { detail::check(mfa_context_set_stream(handle_, stream), handle_); }
    void *stream() const noexcept { return mfa_context_get_stream(handle_); }
    /* mfa_synchronize: waits for the work enqueued on the context's stream (a failed kernel
     * throws here). Immediate on the cpu backend. */
    void synchronize() { detail::check(mfa_synchronize(handle_), handle_); }
    /* mfa_get_gpu_latency: device time of the last attention call, in seconds; 0 on the cpu. */
    double gpu_latency() const noexcept { return mfa_get_gpu_latency(handle_); }

    /* mfa_create_buffer: size zero-filled bytes on the backend's memory. */
    buffer create_buffer(size_t size) {
        mfa_buffer_t h = nullptr;
        detail::check(mfa_create_buffer(handle_, size, &h), handle_);
        return buffer(h, handle_, size);
    }
    /* mfa_buffer_from_ptr: wraps count elements at data (the memory must outlive the buffer). */
    template <class T> buffer wrap(T *data, size_t count) {
        mfa_buffer_t h = nullptr;
        detail::check(mfa_buffer_from_ptr(handle_, (void *)data, count * sizeof(T), &h), handle_);
        return buffer(h, handle_, count * sizeof(T));
    }

    /* The seed's 19-argument mfa_attention_forward: each operand contiguous
     * [batch, num_heads, seq, head_dim] (a transpose flag stores its slices as [head_dim, seq]). */
    void attention_forward(const buffer &q, const buffer &k, const buffer &v, buffer &out, const seed_forward &a) {
        detail::check(mfa_attention_forward(handle_, q.get(), k.get(), v.get(), out.get(), a.batch_size, a.seq_len_q,
                                            a.seq_len_kv, a.num_heads, a.head_dim, a.softmax_scale, a.causal,
                                            a.input_precision, a.intermediate_precision, a.output_precision,
                                            a.transpose_q, a.transpose_k, a.transpose_v, a.transpose_o),
                      handle_);
    }

  private:
    mfa_context_t handle_ = nullptr;
};

/* The loaded library's version as "major.minor.patch". */
inline std::string version() {
    int major = 0, minor = 0, patch = 0;
    mfa_get_version(&major, &minor, &patch);
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

} // namespace mfa

#endif /* MFA_HPP */
