//! The binding against the library's float64 reference backend and a small native reference:
//! fresh random inputs every run (MFA_SEED replays one), outputs poisoned with NaN before each
//! call, forward and backward; error paths; the translated header against the C compiler.
const std = @import("std");
const mfa = @import("mfa");
const c = mfa.c;

var seed_value: u64 = 0;

fn seed() u64 {
    if (seed_value != 0) return seed_value;
    if (std.c.getenv("MFA_SEED")) |s| {
        seed_value = std.fmt.parseUnsigned(u64, std.mem.span(s), 10) catch @panic("MFA_SEED must be an integer");
    } else {
        var ts: std.c.timespec = undefined;
        _ = std.c.clock_gettime(.REALTIME, &ts);
        seed_value = @as(u64, @intCast(ts.sec)) *% 1_000_000_007 +% @as(u64, @intCast(ts.nsec)) | 1;
    }
    return seed_value; // printed with any mismatch (a clean run prints nothing: zig build flags stderr)
}

fn rng(stream: u64) std.Random.DefaultPrng {
    return std.Random.DefaultPrng.init(seed() ^ (stream *% 0x9e3779b97f4a7c15));
}

fn uniform(r: *std.Random.DefaultPrng) f32 {
    return r.random().float(f32) * 2 - 1;
}

const gpa = std.testing.allocator;

fn randomF32(r: *std.Random.DefaultPrng, n: usize) ![]f32 {
    const x = try gpa.alloc(f32, n);
    for (x) |*v| v.* = uniform(r);
    return x;
}

fn nans(comptime T: type, n: usize) ![]T {
    const x = try gpa.alloc(T, n);
    for (x) |*v| v.* = switch (T) {
        f32, f16 => std.math.nan(T),
        mfa.BF16 => mfa.BF16.fromF32(std.math.nan(f32)),
        else => unreachable,
    };
    return x;
}

fn toF64(comptime T: type, x: []const T) ![]f64 {
    const out = try gpa.alloc(f64, x.len);
    for (x, out) |v, *o| o.* = switch (T) {
        f32, f16 => @floatCast(v),
        mfa.BF16 => v.toF32(),
        else => unreachable,
    };
    return out;
}

fn convert(comptime T: type, x: []const f32) ![]T {
    const out = try gpa.alloc(T, x.len);
    for (x, out) |v, *o| o.* = switch (T) {
        f32 => v,
        f16 => @floatCast(v),
        mfa.BF16 => mfa.BF16.fromF32(v),
        else => unreachable,
    };
    return out;
}

/// tests/check/tolerance.h: |x - r| <= atol * rms(ref) + rtol * |r|, infinities equal (its values
/// without the score term, which the small random scores here keep below 1e-5).
fn expectClose(what: []const u8, got: []const f64, ref: []const f64, dtype: mfa.DType, backward: bool) !void {
    const eps: f64 = switch (dtype) {
        .f16 => 1.0 / 1024.0,
        .bf16 => 1.0 / 128.0,
        else => 0,
    };
    const rtol: f64 = if (dtype == .f32) 2e-5 else (if (backward) 12 * eps else eps);
    const atol: f64 = if (dtype == .f32) 2e-5 else (if (backward) 12 * eps else 2 * eps);
    try std.testing.expectEqual(ref.len, got.len);
    var sum: f64 = 0;
    var n: f64 = 0;
    for (ref) |r| if (std.math.isFinite(r)) {
        sum += r * r;
        n += 1;
    };
    const rms_ref = @sqrt(sum / @max(n, 1));
    const rms = if (rms_ref > 0) rms_ref else 1; // all-zero reference: the inputs' scale
    var bad: usize = 0;
    for (got, ref, 0..) |x, r, i| {
        const ok = if (std.math.isInf(r)) x == r else @abs(x - r) <= atol * rms + rtol * @abs(r);
        if (!ok) {
            if (bad < 5) std.debug.print("{s}: [{d}] got {e}, reference {e} (seed {d})\n", .{ what, i, x, r, seed() });
            bad += 1;
        }
    }
    if (bad > 0) {
        std.debug.print("{s}: {d} of {d} elements out of tolerance\n", .{ what, bad, got.len });
        return error.TestExpectedApproxEq;
    }
}

const Case = struct {
    name: []const u8,
    batch: i64,
    sq: i64,
    skv: i64,
    hq: i64,
    hkv: i64,
    dqk: i64,
    dv: i64,
    mask: mfa.Mask = .none,
    mask_align: mfa.Align = .top_left,
    window: [2]i64 = .{ -1, -1 },
    softcap: f32 = 0,
    bhsd: bool = false,
    dense_bool: bool = false,
    block: i64 = 0,
    varlen: ?[]const [2]i32 = null,

    fn tb(self: Case) i64 {
        return if (self.varlen != null) 1 else self.batch;
    }
    fn strides(self: Case, seq: i64, heads: i64, dim: i64) [4]i64 {
        return if (self.bhsd) mfa.stridesBHSD(heads, seq, dim) else mfa.stridesBSHD(seq, heads, dim);
    }
    fn count(self: Case, seq: i64, heads: i64, dim: i64) usize {
        return @intCast(self.tb() * seq * heads * dim);
    }
    fn longest(self: Case) [2]i64 {
        const lens = self.varlen orelse return .{ self.sq, self.skv };
        var m = [2]i64{ 0, 0 };
        for (lens) |l| m = .{ @max(m[0], l[0]), @max(m[1], l[1]) };
        return m;
    }
};

/// Runs forward then backward of case `cs` on `ctx` with inputs in `In`, outputs in `Out`;
/// returns o, lse, dq, dk, dv as f64 (caller frees).
fn runCase(comptime In: type, comptime Out: type, ctx: *mfa.Context, cs: Case, stream: u64) ![5][]f64 {
    var r = rng(stream);
    const qf = try randomF32(&r, cs.count(cs.sq, cs.hq, cs.dqk));
    defer gpa.free(qf);
    const kf = try randomF32(&r, cs.count(cs.skv, cs.hkv, cs.dqk));
    defer gpa.free(kf);
    const vf = try randomF32(&r, cs.count(cs.skv, cs.hkv, cs.dv));
    defer gpa.free(vf);
    const dof = try randomF32(&r, cs.count(cs.sq, cs.hq, cs.dv));
    defer gpa.free(dof);
    const q = try convert(In, qf);
    defer gpa.free(q);
    const k = try convert(In, kf);
    defer gpa.free(k);
    const v = try convert(In, vf);
    defer gpa.free(v);
    const dout = try convert(Out, dof);
    defer gpa.free(dout);

    const m = cs.longest();
    const dense = try gpa.alloc(bool, @intCast(cs.batch * m[0] * m[1]));
    defer gpa.free(dense);
    for (dense) |*x| x.* = uniform(&r) < 0.2;
    const bs = if (cs.block > 0) cs.block else 1;
    const rows = @divFloor(m[0] + bs - 1, bs);
    const cols = @divFloor(m[1] + bs - 1, bs);
    const blocks = try gpa.alloc(u8, @intCast(cs.batch * cs.hq * rows * cols));
    defer gpa.free(blocks);
    for (blocks) |*x| x.* = @intFromBool(uniform(&r) < 0.2);
    var cu_q: [8]i32 = undefined;
    var cu_kv: [8]i32 = undefined;
    var nseq: usize = 0;
    if (cs.varlen) |lens| {
        cu_q[0] = 0;
        cu_kv[0] = 0;
        for (lens, 1..) |l, i| {
            cu_q[i] = cu_q[i - 1] + l[0];
            cu_kv[i] = cu_kv[i - 1] + l[1];
        }
        nseq = lens.len + 1;
    }

    const o = try nans(Out, cs.count(cs.sq, cs.hq, cs.dv));
    defer gpa.free(o);
    const lse = try nans(f32, @intCast(cs.tb() * cs.hq * cs.sq));
    defer gpa.free(lse);
    const dq = try nans(Out, cs.count(cs.sq, cs.hq, cs.dqk));
    defer gpa.free(dq);
    const dk = try nans(Out, cs.count(cs.skv, cs.hkv, cs.dqk));
    defer gpa.free(dk);
    const dv = try nans(Out, cs.count(cs.skv, cs.hkv, cs.dv));
    defer gpa.free(dv);

    var p = mfa.Params{
        .batch = cs.batch,
        .seqlen_q = cs.sq,
        .seqlen_kv = cs.skv,
        .heads_q = cs.hq,
        .heads_kv = cs.hkv,
        .head_dim_qk = cs.dqk,
        .head_dim_v = cs.dv,
        .q = mfa.Tensor.of(@as([]const In, q)).withStrides(cs.strides(cs.sq, cs.hq, cs.dqk)),
        .k = mfa.Tensor.of(@as([]const In, k)).withStrides(cs.strides(cs.skv, cs.hkv, cs.dqk)),
        .v = mfa.Tensor.of(@as([]const In, v)).withStrides(cs.strides(cs.skv, cs.hkv, cs.dv)),
        .o = mfa.Tensor.of(o).withStrides(cs.strides(cs.sq, cs.hq, cs.dv)),
        .lse = lse,
        .mask = cs.mask,
        .mask_align = cs.mask_align,
        .window_left = cs.window[0],
        .window_right = cs.window[1],
        .softcap = cs.softcap,
    };
    if (cs.dense_bool) p.attn_mask = mfa.Tensor.of(@as([]const bool, dense)).withStrides(.{ m[0] * m[1], 0, m[1], 1 });
    if (cs.block > 0) {
        p.block_mask = blocks;
        p.block_q = cs.block;
        p.block_kv = cs.block;
        p.block_mask_rows = rows;
        p.block_mask_cols = cols;
        p.block_mask_stride = .{ cs.hq * rows * cols, rows * cols, cols, 1 };
    }
    if (nseq > 0) {
        p.cu_seqlens_q = cu_q[0..nseq];
        p.cu_seqlens_kv = cu_kv[0..nseq];
    }
    ctx.forward(&p) catch |e| {
        std.debug.print("{s} forward on {s}: {s}\n", .{ cs.name, ctx.backendName(), ctx.lastErrorMessage() });
        return e;
    };
    p.dout = mfa.Tensor.of(@as([]const Out, dout)).withStrides(cs.strides(cs.sq, cs.hq, cs.dv));
    p.dq = mfa.Tensor.of(dq).withStrides(cs.strides(cs.sq, cs.hq, cs.dqk));
    p.dk = mfa.Tensor.of(dk).withStrides(cs.strides(cs.skv, cs.hkv, cs.dqk));
    p.dv = mfa.Tensor.of(dv).withStrides(cs.strides(cs.skv, cs.hkv, cs.dv));
    ctx.backward(&p) catch |e| {
        std.debug.print("{s} backward on {s}: {s}\n", .{ cs.name, ctx.backendName(), ctx.lastErrorMessage() });
        return e;
    };
    return .{ try toF64(Out, o), try toF64(f32, lse), try toF64(Out, dq), try toF64(Out, dk), try toF64(Out, dv) };
}

fn compareCase(comptime In: type, comptime Out: type, cs: Case, stream: u64) !void {
    var cpu = try mfa.Context.init(.{ .backend = .cpu, .num_threads = 2 });
    defer cpu.deinit();
    var ref = try mfa.Context.init(.{ .backend = .reference });
    defer ref.deinit();
    const got = try runCase(In, Out, &cpu, cs, stream);
    defer for (got) |x| gpa.free(x);
    const want = try runCase(In, Out, &ref, cs, stream);
    defer for (want) |x| gpa.free(x);
    const out_dtype = mfa.dtypeOf(Out);
    const names = [_][]const u8{ "o", "lse", "dq", "dk", "dv" };
    for (got, want, names, 0..) |g, w, name, i| {
        var buf: [160]u8 = undefined;
        const what = try std.fmt.bufPrint(&buf, "{s}: {s}", .{ cs.name, name });
        try expectClose(what, g, w, if (i == 1) .f32 else out_dtype, i >= 2);
    }
}

test "gqa, causal bottom-right, head_dim_v != head_dim_qk, vs the reference backend" {
    try compareCase(f32, f32, .{ .name = "gqa causal", .batch = 2, .sq = 37, .skv = 53, .hq = 6, .hkv = 2, .dqk = 40, .dv = 24, .mask = .causal, .mask_align = .bottom_right }, 1);
}

test "bhsd strides, sliding window" {
    try compareCase(f32, f32, .{ .name = "bhsd window", .batch = 1, .sq = 64, .skv = 64, .hq = 4, .hkv = 4, .dqk = 32, .dv = 32, .bhsd = true, .mask = .window, .window = .{ 8, 0 } }, 2);
}

test "f16 in, bf16 out, softcap" {
    try compareCase(f16, mfa.BF16, .{ .name = "f16/bf16 softcap", .batch = 2, .sq = 33, .skv = 41, .hq = 2, .hkv = 1, .dqk = 64, .dv = 64, .softcap = 20 }, 3);
}

test "bf16, dense bool mask broadcast over heads, block-sparse map, causal" {
    try compareCase(mfa.BF16, mfa.BF16, .{ .name = "masks", .batch = 2, .sq = 50, .skv = 70, .hq = 4, .hkv = 2, .dqk = 32, .dv = 32, .mask = .causal, .dense_bool = true, .block = 16 }, 4);
}

test "varlen, causal bottom-right" {
    const lens = [_][2]i32{ .{ 5, 7 }, .{ 17, 17 }, .{ 0, 3 }, .{ 9, 12 } };
    try compareCase(f32, f32, .{ .name = "varlen", .batch = 4, .sq = 31, .skv = 39, .hq = 4, .hkv = 2, .dqk = 32, .dv = 32, .mask = .causal, .mask_align = .bottom_right, .varlen = &lens }, 5);
}

/// Native float64 causal (top-left) attention over BSHD f32, GQA.
fn nativeReference(q: []const f32, k: []const f32, v: []const f32, o: []f64, b: usize, sq: usize, skv: usize, hq: usize, hkv: usize, d: usize) void {
    var w: [64]f64 = undefined;
    for (0..b) |bb| for (0..hq) |h| for (0..sq) |i| {
        const kh = h / (hq / hkv);
        const keys = @min(i + 1, skv);
        var mx: f64 = -std.math.inf(f64);
        for (0..keys) |j| {
            var s: f64 = 0;
            for (0..d) |x| s += @as(f64, q[((bb * sq + i) * hq + h) * d + x]) * k[((bb * skv + j) * hkv + kh) * d + x];
            w[j] = s / @sqrt(@as(f64, @floatFromInt(d)));
            mx = @max(mx, w[j]);
        }
        var sum: f64 = 0;
        for (0..keys) |j| {
            w[j] = @exp(w[j] - mx);
            sum += w[j];
        }
        for (0..d) |x| {
            var acc: f64 = 0;
            for (0..keys) |j| acc += w[j] * v[((bb * skv + j) * hkv + kh) * d + x];
            o[((bb * sq + i) * hq + h) * d + x] = acc / sum;
        }
    };
}

test "forward matches a native Zig reference" {
    const cs = Case{ .name = "native", .batch = 2, .sq = 19, .skv = 29, .hq = 4, .hkv = 2, .dqk = 24, .dv = 24, .mask = .causal };
    var r = rng(100);
    const q = try randomF32(&r, cs.count(cs.sq, cs.hq, cs.dqk));
    defer gpa.free(q);
    const k = try randomF32(&r, cs.count(cs.skv, cs.hkv, cs.dqk));
    defer gpa.free(k);
    const v = try randomF32(&r, cs.count(cs.skv, cs.hkv, cs.dv));
    defer gpa.free(v);
    const want = try gpa.alloc(f64, q.len);
    defer gpa.free(want);
    nativeReference(q, k, v, want, 2, 19, 29, 4, 2, 24);
    const o = try nans(f32, q.len);
    defer gpa.free(o);
    var ctx = try mfa.Context.init(.{ .backend = .cpu, .num_threads = 1 });
    defer ctx.deinit();
    const p = mfa.Params{
        .batch = 2, .seqlen_q = 19, .seqlen_kv = 29, .heads_q = 4, .heads_kv = 2, .head_dim_qk = 24, .head_dim_v = 24,
        .q = mfa.Tensor.of(@as([]const f32, q)).contiguous(19, 4, 24),
        .k = mfa.Tensor.of(@as([]const f32, k)).contiguous(29, 2, 24),
        .v = mfa.Tensor.of(@as([]const f32, v)).contiguous(29, 2, 24),
        .o = mfa.Tensor.of(o).contiguous(19, 4, 24),
        .mask = .causal,
    };
    try ctx.forward(&p);
    const got = try toF64(f32, o);
    defer gpa.free(got);
    try expectClose("causal vs native", got, want, .f32, false);
}

test "seed API: buffers and the 19-argument forward" {
    var ctx = try mfa.Context.initDefault();
    defer ctx.deinit();
    const n = 2 * 24 * 16;
    var bufs: [4]mfa.Buffer = undefined;
    for (&bufs) |*b| b.* = try ctx.createBuffer(n * 4);
    var r = rng(200);
    for (bufs[0..3]) |b| for ((try b.slice(f32))) |*x| {
        x.* = uniform(&r);
    };
    for ((try bufs[3].slice(f32))) |*x| x.* = std.math.nan(f32);
    try ctx.attentionForward(bufs[0], bufs[1], bufs[2], bufs[3], .{ .batch_size = 1, .seq_len_q = 24, .seq_len_kv = 24, .num_heads = 2, .head_dim = 16, .causal = true });
    var ref = try mfa.Context.init(.{ .backend = .reference });
    defer ref.deinit();
    var want: [n]f32 = undefined;
    const st = mfa.stridesBHSD(2, 24, 16);
    // q as a buffer of the other context: the reference context refuses it
    const wrong = ref.forward(&.{
        .batch = 1, .seqlen_q = 24, .seqlen_kv = 24, .heads_q = 2, .heads_kv = 2, .head_dim_qk = 16, .head_dim_v = 16,
        .q = mfa.Tensor.ofBuffer(bufs[0], .f32, 0).withStrides(st),
        .k = mfa.Tensor.of(@as([]const f32, (try bufs[1].slice(f32)))).withStrides(st),
        .v = mfa.Tensor.of(@as([]const f32, (try bufs[2].slice(f32)))).withStrides(st),
        .o = mfa.Tensor.of(@as([]f32, &want)).withStrides(st),
        .mask = .causal,
    });
    try std.testing.expectError(error.WrongContext, wrong);
    try std.testing.expectStringStartsWith(ref.lastErrorMessage(), "q.buffer=");
    try ref.forward(&.{
        .batch = 1, .seqlen_q = 24, .seqlen_kv = 24, .heads_q = 2, .heads_kv = 2, .head_dim_qk = 16, .head_dim_v = 16,
        .q = mfa.Tensor.of(@as([]const f32, (try bufs[0].slice(f32)))).withStrides(st),
        .k = mfa.Tensor.of(@as([]const f32, (try bufs[1].slice(f32)))).withStrides(st),
        .v = mfa.Tensor.of(@as([]const f32, (try bufs[2].slice(f32)))).withStrides(st),
        .o = mfa.Tensor.of(@as([]f32, &want)).withStrides(st),
        .mask = .causal,
    });
    const got = try toF64(f32, (try bufs[3].slice(f32)));
    defer gpa.free(got);
    const ref64 = try toF64(f32, &want);
    defer gpa.free(ref64);
    try expectClose("seed forward", got, ref64, .f32, false);
    bufs[0].deinit(); // the others go with the context
}

test "errors carry the library's code and message; nothing is written" {
    var ctx = try mfa.Context.init(.{ .backend = .cpu, .num_threads = 1 });
    defer ctx.deinit();
    var q: [4 * 12 * 8]f32 = @splat(0.5);
    const kv: [4 * 5 * 8]f32 = @splat(0.5);
    var o: [4 * 12 * 8]f32 = @splat(std.math.nan(f32));
    _ = &q;
    var p = mfa.Params{
        .batch = 1, .seqlen_q = 4, .seqlen_kv = 4, .heads_q = 12, .heads_kv = 5, .head_dim_qk = 8, .head_dim_v = 8,
        .q = mfa.Tensor.of(@as([]const f32, &q)).contiguous(4, 12, 8),
        .k = mfa.Tensor.of(@as([]const f32, &kv)).contiguous(4, 5, 8),
        .v = mfa.Tensor.of(@as([]const f32, &kv)).contiguous(4, 5, 8),
        .o = mfa.Tensor.of(@as([]f32, &o)).contiguous(4, 12, 8),
    };
    try std.testing.expectError(error.InvalidArgs, ctx.forward(&p));
    try std.testing.expectEqualStrings("heads_q=12 is not a multiple of heads_kv=5", ctx.lastErrorMessage());
    try std.testing.expectError(error.InvalidArgs, ctx.supported(&p, .forward));
    for (o) |x| try std.testing.expect(std.math.isNan(x));

    // a slice too short: the library's bounds check, not a read past it
    p.heads_q = 1;
    p.heads_kv = 1;
    p.q = mfa.Tensor.of(@as([]const f32, q[0..31])).contiguous(4, 1, 8);
    p.k = mfa.Tensor.of(@as([]const f32, &kv)).contiguous(4, 1, 8);
    p.v = p.k;
    p.o = mfa.Tensor.of(@as([]f32, &o)).contiguous(4, 1, 8);
    try std.testing.expectError(error.OutOfBounds, ctx.forward(&p));
    try std.testing.expectStringStartsWith(ctx.lastErrorMessage(), "q: reaches bytes [0, 128) from byte_offset=0 but its buffer holds 124 bytes");
    p.q = mfa.Tensor.of(@as([]const f32, &q)).contiguous(4, 1, 8);
    try ctx.forward(&p);

    // what only the wrapper sees
    var short_lse: [3]f32 = @splat(0);
    p.lse = &short_lse;
    try std.testing.expectError(error.OutOfBounds, ctx.forward(&p));
    try std.testing.expectStringStartsWith(ctx.lastErrorMessage(), "lse:");
    p.lse = null;
    p.o = mfa.Tensor.of(@as([]const f32, &o)).contiguous(4, 1, 8);
    try std.testing.expectError(error.InvalidArgs, ctx.forward(&p));
    try std.testing.expectStringStartsWith(ctx.lastErrorMessage(), "an output tensor");
    p.o = mfa.Tensor.of(@as([]f32, &o)).contiguous(4, 1, 8);
    const cu = [_]i32{ 0, 4 };
    p.batch = 2;
    p.cu_seqlens_q = &cu;
    p.cu_seqlens_kv = &cu;
    try std.testing.expectError(error.OutOfBounds, ctx.forward(&p));
    p.batch = 1;
    p.cu_seqlens_q = null;
    p.cu_seqlens_kv = null;
    const map = [_]u8{ 1, 1, 1 };
    p.block_mask = &map;
    p.block_q = 2;
    p.block_kv = 2;
    p.block_mask_rows = 2;
    p.block_mask_cols = 2;
    p.block_mask_stride = .{ 4, 4, 2, 1 };
    try std.testing.expectError(error.OutOfBounds, ctx.forward(&p));
    try std.testing.expectStringStartsWith(ctx.lastErrorMessage(), "block_mask:");
    p.block_mask = null;
    p.q = null;
    try std.testing.expectError(error.NullPointer, ctx.forward(&p));
    try std.testing.expectEqualStrings("q.data is NULL (and no buffer is set)", ctx.lastErrorMessage());
    try std.testing.expectError(error.InvalidArgs, ctx.forward(&.{}));
    try std.testing.expectEqualStrings("batch=0 must be at least 1", ctx.lastErrorMessage());

    try std.testing.expectError(error.InvalidArgs, mfa.Context.init(.{ .num_threads = -1 }));
    try std.testing.expectEqualStrings("options->num_threads=-1 is negative", mfa.createErrorMessage());
    if (mfa.Context.init(.{ .backend = .cuda })) |cuda| {
        var ccuda = cuda;
        ccuda.deinit();
    } else |e| {
        try std.testing.expectEqual(error.DeviceNotSupported, e);
        try std.testing.expect(mfa.createErrorMessage().len > 0);
    }
}

test "buffer copies and stream calls on the cpu" {
    var ctx = try mfa.Context.init(.{ .backend = .cpu, .num_threads = 1 });
    defer ctx.deinit();
    var b = try ctx.createBuffer(16);
    defer b.deinit();
    try ctx.copyFromHost(b, 4, @as([]const f32, &.{ 1.5, 2.5 }));
    var back: [4]f32 = @splat(-1);
    try ctx.copyToHost(b, 0, @as([]f32, &back));
    try std.testing.expectEqualSlices(f32, &.{ 0, 1.5, 2.5, 0 }, &back);
    try std.testing.expectError(error.OutOfBounds, ctx.copyFromHost(b, 12, @as([]const f32, &.{ 1, 2 })));
    try std.testing.expectEqualStrings("mfa_buffer_copy_from_host: bytes [12, 12 + 8) exceed the buffer's 16 bytes", ctx.lastErrorMessage());
    try ctx.setStream(null);
    try std.testing.expect(ctx.stream() == null);
    try ctx.synchronize();
    try std.testing.expectEqual(@as(f64, 0), ctx.gpuLatency());
}

test "bf16 conversions round to nearest even" {
    var bits: u32 = 0;
    while (bits < 1 << 16) : (bits += 1) {
        const b = mfa.BF16{ .bits = @intCast(bits) };
        const x = b.toF32();
        if (!std.math.isNan(x)) try std.testing.expectEqual(b.bits, mfa.BF16.fromF32(x).bits);
    }
    try std.testing.expectEqual(@as(u16, 0x3f80), mfa.BF16.fromF32(1.0 + 1.0 / 256.0).bits);
    try std.testing.expectEqual(@as(u16, 0x3f82), mfa.BF16.fromF32(1.0 + 3.0 / 256.0).bits);
}

const LayoutRow = extern struct { name: [*:0]const u8, value: c_longlong };
extern const mfa_zig_layout: [64]LayoutRow;
extern const mfa_zig_layout_count: c_int;

fn cValue(name: []const u8) ?c_longlong {
    const n: usize = @intCast(mfa_zig_layout_count);
    for (mfa_zig_layout[0..n]) |row| if (std.mem.eql(u8, std.mem.span(row.name), name)) return row.value;
    return null;
}

fn expectLayout(comptime T: type, comptime c_name: []const u8) !usize {
    var checked: usize = 1;
    try std.testing.expectEqual(cValue("sizeof " ++ c_name).?, @sizeOf(T));
    inline for (@typeInfo(T).@"struct".fields) |field| {
        const name = field.name;
        const v = cValue(c_name ++ "." ++ name) orelse {
            std.debug.print("{s}.{s}: not in the C table\n", .{ c_name, name });
            return error.TestUnexpectedResult;
        };
        try std.testing.expectEqual(v, @offsetOf(T, name));
        checked += 1;
    }
    return checked;
}

test "the translated header matches the C compiler: sizes, every field offset, constants" {
    var checked: usize = 0;
    checked += try expectLayout(c.mfa_context_options_t, "mfa_context_options_t");
    checked += try expectLayout(c.mfa_tensor_t, "mfa_tensor_t");
    checked += try expectLayout(c.mfa_attention_params_t, "mfa_attention_params_t");
    try std.testing.expectEqual(@as(usize, @intCast(mfa_zig_layout_count)), checked);
    // the wrapper's enums against the header's constants
    try std.testing.expectEqual(c.MFA_DTYPE_F16, @intFromEnum(mfa.DType.f16));
    try std.testing.expectEqual(c.MFA_DTYPE_BF16, @intFromEnum(mfa.DType.bf16));
    try std.testing.expectEqual(c.MFA_DTYPE_F32, @intFromEnum(mfa.DType.f32));
    try std.testing.expectEqual(c.MFA_DTYPE_BOOL, @intFromEnum(mfa.DType.bool));
    try std.testing.expectEqual(c.MFA_BACKEND_REFERENCE, @intFromEnum(mfa.Backend.reference));
    try std.testing.expectEqual(c.MFA_BACKEND_CUDA, @intFromEnum(mfa.Backend.cuda));
    try std.testing.expectEqual(c.MFA_MASK_WINDOW, @intFromEnum(mfa.Mask.window));
    try std.testing.expectEqual(c.MFA_ALIGN_BOTTOM_RIGHT, @intFromEnum(mfa.Align.bottom_right));
    try std.testing.expectEqual(c.MFA_PRECISION_FP32, @intFromEnum(mfa.Precision.fp32));
    try std.testing.expectEqual(c.MFA_DIRECTION_BWD, @intFromEnum(mfa.Direction.backward));
    try std.testing.expectEqual(c.MFA_ERROR_WRONG_CONTEXT, 9);
    const v = mfa.version();
    try std.testing.expectEqual(c.MFA_VERSION_MAJOR, v.major);
    try std.testing.expectEqual(c.MFA_VERSION_MINOR, v.minor);
}
