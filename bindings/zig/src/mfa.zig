//! Zig binding of libmfa: exact (FlashAttention-style) attention through the library's C ABI.
//!
//! `c` is include/mfa.h translated by build.zig (translate-c); this file is a thin wrapper over
//! it: a Context with init/deinit, tensors over slices whose bounds the library checks (each
//! slice is wrapped as an mfa buffer of exactly its bytes for the duration of a call), a Params
//! struct with the header's defaults, and calls that return error unions. The message behind an
//! error (the library's, naming the argument and its value) is `ctx.lastErrorMessage()`; for a
//! failed `Context.init`, `createErrorMessage()`. Every computation is the library's.
const std = @import("std");

/// The translated header, for anything the wrapper does not cover.
pub const c = @import("c");

/// The status codes of mfa.h as an error set (`Unknown` for codes this version does not know).
pub const Error = error{
    InvalidArgs,
    MemoryAllocation,
    DeviceNotSupported,
    KernelCompilation,
    ExecutionFailed,
    NullPointer,
    Unsupported,
    OutOfBounds,
    WrongContext,
    Unknown,
};

fn check(code: c.mfa_error_t) Error!void {
    return switch (code) {
        c.MFA_SUCCESS => {},
        c.MFA_ERROR_INVALID_ARGS => error.InvalidArgs,
        c.MFA_ERROR_MEMORY_ALLOCATION => error.MemoryAllocation,
        c.MFA_ERROR_DEVICE_NOT_SUPPORTED => error.DeviceNotSupported,
        c.MFA_ERROR_KERNEL_COMPILATION => error.KernelCompilation,
        c.MFA_ERROR_EXECUTION_FAILED => error.ExecutionFailed,
        c.MFA_ERROR_NULL_POINTER => error.NullPointer,
        c.MFA_ERROR_UNSUPPORTED => error.Unsupported,
        c.MFA_ERROR_OUT_OF_BOUNDS => error.OutOfBounds,
        c.MFA_ERROR_WRONG_CONTEXT => error.WrongContext,
        else => error.Unknown,
    };
}

/// Element types (MFA_DTYPE_*); the seed's precision values are the same numbers.
pub const DType = enum(i32) { f16 = 0, bf16 = 1, f32 = 2, bool = 3 };
pub const Precision = enum(c_int) { fp16 = 0, bf16 = 1, fp32 = 2 };
pub const Backend = enum(i32) { auto = 0, cpu = 1, cuda = 2, reference = 3 };
pub const Mask = enum(i32) { none = 0, causal = 1, window = 2 };
/// Diagonal of causal/window masks: d = 0 (top_left, PyTorch) or seqlen_kv - seqlen_q
/// (bottom_right, FlashAttention).
pub const Align = enum(i32) { top_left = 0, bottom_right = 1 };
pub const Direction = enum(i32) { forward = 0, backward = 1 };

/// bfloat16 (the upper half of an f32), stored as its bits. (binary16 is Zig's own f16.)
pub const BF16 = extern struct {
    bits: u16,

    /// Rounds to the nearest bfloat16 (ties to even); NaN stays NaN.
    pub fn fromF32(x: f32) BF16 {
        const bits: u32 = @bitCast(x);
        if (std.math.isNan(x)) return .{ .bits = @truncate((bits >> 16) | 0x40) };
        return .{ .bits = @truncate((bits +% (0x7fff + ((bits >> 16) & 1))) >> 16) };
    }

    pub fn toF32(self: BF16) f32 {
        return @bitCast(@as(u32, self.bits) << 16);
    }
};

/// The dtype of a slice's element type: f32, f16, BF16, and bool or u8 for dense masks.
pub fn dtypeOf(comptime T: type) DType {
    return switch (T) {
        f32 => .f32,
        f16 => .f16,
        BF16 => .bf16,
        bool, u8 => .bool,
        else => @compileError("libmfa has no element type for " ++ @typeName(T)),
    };
}

/// Strides of a contiguous [batch, seq, heads, dim] tensor (BSHD).
pub fn stridesBSHD(seq: i64, heads: i64, dim: i64) [4]i64 {
    return .{ seq * heads * dim, heads * dim, dim, 1 };
}

/// Strides, in [batch, seq, head, dim] order, of a contiguous [batch, heads, seq, dim] tensor.
pub fn stridesBHSD(heads: i64, seq: i64, dim: i64) [4]i64 {
    return .{ heads * seq * dim, dim, seq * dim, 1 };
}

/// A view the library reads or writes: memory, an element type and element strides in the
/// header's order [batch, seq, head, dim] ([batch, head, q, kv] for the dense mask). Its
/// extent comes from the Params; the library checks every element a call reaches against the
/// slice or buffer the view was made from.
pub const Tensor = struct {
    memory: union(enum) {
        /// a slice, wrapped as a buffer of exactly its bytes during the call
        slice: struct { ptr: ?*anyopaque, bytes: usize },
        /// an mfa buffer of the calling context
        buffer: struct { handle: c.mfa_buffer_t, offset: u64 },
        /// a raw pointer (device memory on a CUDA context): unchecked
        raw: ?*anyopaque,
    },
    dtype: DType,
    strides: [4]i64 = .{ 0, 0, 0, 0 },
    /// false for views of const slices: the library is never asked to write through them
    writable: bool,

    /// A view of a slice (`[]T` or `[]const T`); the dtype follows T.
    pub fn of(slice: anytype) Tensor {
        const info = @typeInfo(@TypeOf(slice)).pointer;
        const bytes = std.mem.sliceAsBytes(slice);
        return .{
            .memory = .{ .slice = .{ .ptr = @ptrCast(@constCast(bytes.ptr)), .bytes = bytes.len } },
            .dtype = comptime dtypeOf(info.child),
            .writable = !info.is_const,
        };
    }

    /// A view into an mfa buffer, from byte_offset on.
    pub fn ofBuffer(buffer: Buffer, dtype: DType, byte_offset: u64) Tensor {
        return .{ .memory = .{ .buffer = .{ .handle = buffer.raw, .offset = byte_offset } }, .dtype = dtype, .writable = true };
    }

    /// A view of raw memory: on a CUDA context a device pointer (or mapped host memory).
    /// Nothing checks it: every element the call reaches must be valid for the call (on a CUDA
    /// context, until the context's stream has run it).
    pub fn ofRaw(ptr: ?*anyopaque, dtype: DType) Tensor {
        return .{ .memory = .{ .raw = ptr }, .dtype = dtype, .writable = true };
    }

    /// Sets the strides of a contiguous [batch, seq, heads, dim] tensor.
    pub fn contiguous(self: Tensor, seq: i64, heads: i64, dim: i64) Tensor {
        return self.withStrides(stridesBSHD(seq, heads, dim));
    }

    pub fn withStrides(self: Tensor, strides: [4]i64) Tensor {
        var t = self;
        t.strides = strides;
        return t;
    }
};

/// Everything one attention call needs, field for field as mfa_attention_params_t (see
/// include/mfa.h); the defaults are mfa_attention_params_init's. Pointer-valued fields of the
/// header are slices here (or `*_raw` for device memory).
pub const Params = struct {
    batch: i64 = 0,
    seqlen_q: i64 = 0,
    seqlen_kv: i64 = 0,
    heads_q: i64 = 0,
    heads_kv: i64 = 0,
    head_dim_qk: i64 = 0,
    head_dim_v: i64 = 0,
    q: ?Tensor = null,
    k: ?Tensor = null,
    v: ?Tensor = null,
    /// written by forward, read by backward
    o: ?Tensor = null,
    /// [batch, heads_q, seqlen_q] (varlen: [heads_q, total_q]); written by forward when set,
    /// read by backward
    lse: ?[]f32 = null,
    lse_raw: ?[*]f32 = null,
    softmax_scale: f32 = 0,
    softcap: f32 = 0,
    mask: Mask = .none,
    mask_align: Align = .top_left,
    window_left: i64 = -1,
    window_right: i64 = -1,
    /// uint8 [batch, heads_q, rows, cols] through block_mask_stride
    block_mask: ?[]const u8 = null,
    block_mask_raw: ?[*]const u8 = null,
    block_q: i64 = 0,
    block_kv: i64 = 0,
    block_mask_rows: i64 = 0,
    block_mask_cols: i64 = 0,
    block_mask_stride: [4]i64 = .{ 0, 0, 0, 0 },
    attn_mask: ?Tensor = null,
    /// varlen: batch + 1 offsets into the packed tokens (host memory)
    cu_seqlens_q: ?[]const i32 = null,
    cu_seqlens_kv: ?[]const i32 = null,
    dout: ?Tensor = null,
    dq: ?Tensor = null,
    dk: ?Tensor = null,
    dv: ?Tensor = null,
    deterministic: bool = false,
    allow_tf32: bool = false,
};

pub const Options = struct {
    backend: Backend = .auto,
    device: i32 = 0,
    /// cpu threads; 0 = MFA_NUM_THREADS or all online cores
    num_threads: i32 = 0,
};

/// The seed forward's arguments after the buffers (see Context.attentionForward).
pub const SeedForward = struct {
    batch_size: u32,
    seq_len_q: u32,
    seq_len_kv: u32,
    num_heads: u32,
    head_dim: u16,
    softmax_scale: f32 = 0,
    causal: bool = false,
    input_precision: Precision = .fp32,
    intermediate_precision: Precision = .fp32,
    output_precision: Precision = .fp32,
    transpose_q: bool = false,
    transpose_k: bool = false,
    transpose_v: bool = false,
    transpose_o: bool = false,
};

/// The message of the last failed Context.init on this thread.
pub fn createErrorMessage() [:0]const u8 {
    return std.mem.span(c.mfa_last_error_message(null));
}

pub fn version() struct { major: c_int, minor: c_int, patch: c_int } {
    var v: [3]c_int = undefined;
    c.mfa_get_version(&v[0], &v[1], &v[2]);
    return .{ .major = v[0], .minor = v[1], .patch = v[2] };
}

/// Backs views of empty slices: a one-byte buffer holds no float element, so an empty extent
/// passes and any other fails the bounds check without touching it.
var empty_slice: u64 = 0;

/// A library context (backend, threads, last error); one thread at a time. deinit frees it and
/// every buffer it still owns.
pub const Context = struct {
    raw: c.mfa_context_t,
    /// Set when the wrapper itself refused the last call (the library has no message for it).
    binding_message: ?[:0]const u8 = null,
    /// The backend computes on device memory (cuda): host slices are refused.
    device: bool = false,

    /// mfa_create_context_ex; on error see createErrorMessage().
    pub fn init(options: Options) Error!Context {
        var o: c.mfa_context_options_t = undefined;
        c.mfa_context_options_init(&o);
        o.backend = @intFromEnum(options.backend);
        o.device = options.device;
        o.num_threads = options.num_threads;
        var raw: c.mfa_context_t = null;
        try check(c.mfa_create_context_ex(&raw, &o));
        return fromRaw(raw);
    }

    /// mfa_create_context: the default backend (MFA_BACKEND, else cpu), all cores.
    pub fn initDefault() Error!Context {
        var raw: c.mfa_context_t = null;
        try check(c.mfa_create_context(&raw));
        return fromRaw(raw);
    }

    fn fromRaw(raw: c.mfa_context_t) Context {
        return .{ .raw = raw, .device = std.mem.eql(u8, std.mem.span(c.mfa_context_backend_name(raw)), "cuda") };
    }

    const host_on_device = "a host slice cannot be used on a device (cuda) context: use a buffer of the context (Tensor.ofBuffer) or device memory (Tensor.ofRaw, lse_raw, block_mask_raw)";

    pub fn deinit(self: *Context) void {
        c.mfa_destroy_context(self.raw);
        self.raw = null;
    }

    /// The message behind the last error of a call on this context.
    pub fn lastErrorMessage(self: *const Context) [:0]const u8 {
        if (self.binding_message) |m| return m;
        return std.mem.span(c.mfa_last_error_message(self.raw));
    }

    pub fn backendName(self: Context) [:0]const u8 {
        return std.mem.span(c.mfa_context_backend_name(self.raw));
    }

    pub fn description(self: Context) [:0]const u8 {
        return std.mem.span(c.mfa_context_description(self.raw));
    }

    pub fn numThreads(self: Context) i32 {
        return c.mfa_context_num_threads(self.raw);
    }

    /// Writes o (and lse when set); nothing is written on error.
    pub fn forward(self: *Context, p: *const Params) Error!void {
        return self.run(p, .forward, false);
    }

    /// Reads q, k, v, o, dout, lse; writes dq, dk, dv.
    pub fn backward(self: *Context, p: *const Params) Error!void {
        return self.run(p, .backward, false);
    }

    /// The checks of the call without computing it.
    pub fn supported(self: *Context, p: *const Params, direction: Direction) Error!void {
        return self.run(p, direction, true);
    }

    fn refuse(self: *Context, err: Error, message: [:0]const u8) Error {
        self.binding_message = message;
        return err;
    }

    fn run(self: *Context, p: *const Params, direction: Direction, check_only: bool) Error!void {
        self.binding_message = null;
        const bwd = direction == .backward;
        var raw: c.mfa_attention_params_t = undefined;
        c.mfa_attention_params_init(&raw);
        raw.batch = p.batch;
        raw.seqlen_q = p.seqlen_q;
        raw.seqlen_kv = p.seqlen_kv;
        raw.heads_q = p.heads_q;
        raw.heads_kv = p.heads_kv;
        raw.head_dim_qk = p.head_dim_qk;
        raw.head_dim_v = p.head_dim_v;
        raw.softmax_scale = p.softmax_scale;
        raw.softcap = p.softcap;
        raw.mask = @intFromEnum(p.mask);
        raw.mask_align = @intFromEnum(p.mask_align);
        raw.window_left = p.window_left;
        raw.window_right = p.window_right;
        raw.block_q = p.block_q;
        raw.block_kv = p.block_kv;
        raw.block_mask_rows = p.block_mask_rows;
        raw.block_mask_cols = p.block_mask_cols;
        raw.block_mask_stride = p.block_mask_stride;
        raw.deterministic = @intFromBool(p.deterministic);
        raw.allow_tf32 = @intFromBool(p.allow_tf32);

        var wrapped: [9]c.mfa_buffer_t = @splat(null);
        defer for (wrapped) |b| c.mfa_destroy_buffer(b);
        const Slot = struct { name: []const u8, view: ?Tensor, field: *c.mfa_tensor_t, written: bool, used: bool };
        const slots = [_]Slot{
            .{ .name = "q", .view = p.q, .field = &raw.q, .written = false, .used = true },
            .{ .name = "k", .view = p.k, .field = &raw.k, .written = false, .used = true },
            .{ .name = "v", .view = p.v, .field = &raw.v, .written = false, .used = true },
            .{ .name = "o", .view = p.o, .field = &raw.o, .written = !bwd, .used = true },
            .{ .name = "attn_mask", .view = p.attn_mask, .field = &raw.attn_mask, .written = false, .used = true },
            .{ .name = "dout", .view = p.dout, .field = &raw.dout, .written = false, .used = bwd },
            .{ .name = "dq", .view = p.dq, .field = &raw.dq, .written = true, .used = bwd },
            .{ .name = "dk", .view = p.dk, .field = &raw.dk, .written = true, .used = bwd },
            .{ .name = "dv", .view = p.dv, .field = &raw.dv, .written = true, .used = bwd },
        };
        for (slots, 0..) |slot, i| {
            const t = slot.view orelse continue;
            if (!slot.used) continue;
            if (slot.written and !t.writable)
                return self.refuse(error.InvalidArgs, "an output tensor (o, dq, dk or dv) views a const slice");
            slot.field.* = .{ .dtype = @intFromEnum(t.dtype), .stride = t.strides };
            switch (t.memory) {
                .raw => |ptr| slot.field.data = ptr,
                .buffer => |b| {
                    slot.field.buffer = b.handle;
                    slot.field.byte_offset = b.offset;
                },
                .slice => |s| {
                    if (self.device) return self.refuse(error.InvalidArgs, host_on_device);
                    if (s.bytes == 0 and i == 4)
                        return self.refuse(error.InvalidArgs, "attn_mask: the mask slice is empty");
                    const ptr: ?*anyopaque = if (s.bytes > 0) s.ptr else @ptrCast(&empty_slice);
                    try check(c.mfa_buffer_from_ptr(self.raw, ptr, @max(s.bytes, 1), &wrapped[i]));
                    slot.field.buffer = wrapped[i];
                },
            }
        }

        const varlen = p.cu_seqlens_q != null or p.cu_seqlens_kv != null;
        if (self.device and (p.lse != null or p.block_mask != null)) return self.refuse(error.InvalidArgs, host_on_device);
        if (p.lse) |lse| {
            if (product(&.{ if (varlen) 1 else p.batch, p.heads_q, p.seqlen_q })) |need| {
                if (lse.len < need) return self.refuse(error.OutOfBounds, "lse: the slice is shorter than [batch, heads_q, seqlen_q]");
            }
            raw.lse = lse.ptr;
        } else if (p.lse_raw) |ptr| raw.lse = ptr;
        if (p.block_mask) |map| {
            if (!blockMaskFits(p, map.len)) return self.refuse(error.OutOfBounds, "block_mask: its strides reach past the end of the slice");
            raw.block_mask = map.ptr;
        } else if (p.block_mask_raw) |ptr| raw.block_mask = ptr;
        if (varlen) {
            const cu_q = p.cu_seqlens_q orelse return self.refuse(error.NullPointer, "varlen needs both cu_seqlens_q and cu_seqlens_kv");
            const cu_kv = p.cu_seqlens_kv orelse return self.refuse(error.NullPointer, "varlen needs both cu_seqlens_q and cu_seqlens_kv");
            if (p.batch >= 0 and (cu_q.len < p.batch + 1 or cu_kv.len < p.batch + 1))
                return self.refuse(error.OutOfBounds, "cu_seqlens: a slice holds fewer than batch + 1 offsets");
            raw.cu_seqlens_q = cu_q.ptr;
            raw.cu_seqlens_kv = cu_kv.ptr;
        }

        try check(if (check_only)
            c.mfa_attention_supported(self.raw, &raw, @intFromEnum(direction))
        else if (bwd)
            c.mfa_attention_bwd(self.raw, &raw)
        else
            c.mfa_attention_fwd(self.raw, &raw));
    }

    // ---- streams, synchronisation, timing, buffer copies (GPU contexts; plain on the cpu) ----

    /// mfa_context_set_stream: later calls are enqueued on `cuda_stream` (a cudaStream_t; null is the
    /// device's default stream). Stored but unused on the cpu backend.
    pub fn setStream(self: *Context, cuda_stream: ?*anyopaque) Error!void {
        self.binding_message = null;
        try check(c.mfa_context_set_stream(self.raw, cuda_stream));
    }

    pub fn stream(self: Context) ?*anyopaque {
        return c.mfa_context_get_stream(self.raw);
    }

    /// mfa_synchronize: waits for every call enqueued on the context's stream; a failed kernel
    /// is reported here (error.ExecutionFailed).
    pub fn synchronize(self: *Context) Error!void {
        self.binding_message = null;
        try check(c.mfa_synchronize(self.raw));
    }

    /// mfa_get_gpu_latency: device time of the last attention call in seconds (0 on the cpu).
    pub fn gpuLatency(self: Context) f64 {
        return c.mfa_get_gpu_latency(self.raw);
    }

    /// mfa_buffer_copy_from_host: copies the slice into a buffer of this context from byte
    /// `offset` on (an upload on a CUDA context; returns when done).
    pub fn copyFromHost(self: *Context, buffer: Buffer, offset: usize, src: anytype) Error!void {
        self.binding_message = null;
        const bytes = std.mem.sliceAsBytes(src);
        try check(c.mfa_buffer_copy_from_host(buffer.raw, offset, bytes.ptr, bytes.len));
    }

    /// mfa_buffer_copy_to_host: fills the slice from a buffer of this context at byte `offset`
    /// (a download on a CUDA context, after the enqueued work; returns when done).
    pub fn copyToHost(self: *Context, buffer: Buffer, offset: usize, dst: anytype) Error!void {
        self.binding_message = null;
        const bytes = std.mem.sliceAsBytes(dst);
        try check(c.mfa_buffer_copy_to_host(buffer.raw, offset, bytes.ptr, bytes.len));
    }

    // ---- seed-compatible API ---------------------------------------------------------------

    /// mfa_create_buffer: size zero-filled bytes the backend computes on (host memory on the
    /// cpu backend, device memory on a CUDA context).
    pub fn createBuffer(self: *Context, size: usize) Error!Buffer {
        self.binding_message = null;
        var raw: c.mfa_buffer_t = null;
        try check(c.mfa_create_buffer(self.raw, size, &raw));
        return .{ .raw = raw, .len = size, .device = self.device };
    }

    /// mfa_buffer_from_ptr: a buffer over caller memory, which must outlive it.
    pub fn wrap(self: *Context, slice: anytype) Error!Buffer {
        self.binding_message = null;
        if (self.device) return self.refuse(error.InvalidArgs, host_on_device);
        const bytes = std.mem.sliceAsBytes(slice);
        var raw: c.mfa_buffer_t = null;
        try check(c.mfa_buffer_from_ptr(self.raw, @ptrCast(bytes.ptr), bytes.len, &raw));
        return .{ .raw = raw, .len = bytes.len };
    }

    /// The seed's 19-argument mfa_attention_forward: each operand contiguous
    /// [batch, num_heads, seq, head_dim] (a transpose flag stores its slices as [head_dim, seq]).
    pub fn attentionForward(self: *Context, q: Buffer, k: Buffer, v: Buffer, out: Buffer, a: SeedForward) Error!void {
        self.binding_message = null;
        try check(c.mfa_attention_forward(self.raw, q.raw, k.raw, v.raw, out.raw, a.batch_size, a.seq_len_q, a.seq_len_kv, a.num_heads, a.head_dim, a.softmax_scale, a.causal, @intFromEnum(a.input_precision), @intFromEnum(a.intermediate_precision), @intFromEnum(a.output_precision), a.transpose_q, a.transpose_k, a.transpose_v, a.transpose_o));
    }
};

/// An mfa_buffer_t of a context; deinit frees it (or the context does, when it is destroyed
/// first: then do not deinit the buffer).
pub const Buffer = struct {
    raw: c.mfa_buffer_t,
    len: usize,
    /// device memory (a cuda context): not viewable from the host
    device: bool = false,

    pub fn deinit(self: *Buffer) void {
        c.mfa_destroy_buffer(self.raw);
        self.raw = null;
    }

    /// The contents as T elements: host memory only (cpu and reference contexts); device
    /// buffers give error.InvalidArgs (use Context.copyToHost / copyFromHost).
    pub fn slice(self: Buffer, comptime T: type) Error![]T {
        if (self.device) return error.InvalidArgs;
        const ptr: [*]T = @ptrCast(@alignCast(c.mfa_buffer_contents(self.raw)));
        return ptr[0 .. self.len / @sizeOf(T)];
    }
};

/// a * b * c for non-negative sizes, or null (then the library rejects the sizes).
fn product(xs: []const i64) ?usize {
    var n: usize = 1;
    for (xs) |x| {
        if (x < 0) return null;
        n = std.math.mul(usize, n, @intCast(x)) catch return null;
    }
    return n;
}

/// The block-sparse map's reach over [batch, heads_q, rows, cols] lies inside `len` elements.
/// Shapes the library rejects anyway (non-positive, overflowing) pass here.
fn blockMaskFits(p: *const Params, len: usize) bool {
    const extent = [4]i64{ p.batch, p.heads_q, p.block_mask_rows, p.block_mask_cols };
    var lo: i64 = 0;
    var hi: i64 = 0;
    for (extent, p.block_mask_stride) |e, s| {
        if (e <= 0) return true;
        const step = std.math.mul(i64, s, e - 1) catch return true;
        if (step < 0) {
            lo = std.math.add(i64, lo, step) catch return true;
        } else {
            hi = std.math.add(i64, hi, step) catch return true;
        }
    }
    return lo >= 0 and hi < len;
}
