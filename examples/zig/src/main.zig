//! The libmfa example every binding repeats (see examples/c/attention.c), through the Zig
//! binding: the seed README's program (library buffers, the 19-argument forward), then multi-head
//! GQA causal attention with the log-sum-exp on Zig slices. Prints the same numbers as the C
//! program.
//!
//! `attention bench [calls]` times the per-call cost on a tiny shape (batch 1, 1 head, seq 1,
//! dim 8, one cpu thread) through the binding and through the raw C call, in the same process.
//!
//! Run: cd examples/zig && python3 -m ziglang build run [-Doptimize=ReleaseFast -- bench]
const std = @import("std");
const mfa = @import("mfa");

/// The example's inputs: uniform in [-1, 1), the same sequence in every language.
fn fill(x: []f32, state: *u64) void {
    for (x) |*v| {
        state.* = state.* *% 6364136223846793005 +% 1442695040888963407;
        v.* = @as(f32, @floatFromInt((state.* >> 40) & 0xffffff)) / 16777216.0 * 2.0 - 1.0;
    }
}

fn summary(out: *std.Io.Writer, name: []const u8, x: []const f32) !void {
    var sum: f64 = 0;
    for (x) |v| sum += v;
    try out.print("{s}[0..4] = {d:.6} {d:.6} {d:.6} {d:.6}  sum = {d:.6}\n", .{ name, x[0], x[1], x[2], x[3], sum });
}

fn report(ctx: ?*const mfa.Context, err: mfa.Error) mfa.Error {
    const message = if (ctx) |c| c.lastErrorMessage() else mfa.createErrorMessage();
    std.debug.print("{s}: {s}\n", .{ @errorName(err), message });
    return err;
}

/// 1. The seed README's example.
fn seedExample(out: *std.Io.Writer) !void {
    const seq_len = 128;
    const head_dim = 64;
    const count = seq_len * head_dim;
    var context = mfa.Context.initDefault() catch |e| return report(null, e);
    defer context.deinit(); // frees the buffers too
    var buffers: [4]mfa.Buffer = undefined;
    for (&buffers) |*b| b.* = context.createBuffer(count * 4) catch |e| return report(&context, e);
    var rng: u64 = 1;
    for (buffers[0..3]) |b| fill((try b.slice(f32)), &rng);
    context.attentionForward(buffers[0], buffers[1], buffers[2], buffers[3], .{
        .batch_size = 1,
        .seq_len_q = seq_len,
        .seq_len_kv = seq_len,
        .num_heads = 1,
        .head_dim = head_dim,
        .softmax_scale = 1.0 / @sqrt(@as(f32, head_dim)),
        .causal = false,
        .input_precision = .fp32, // FP32 precision
        .intermediate_precision = .fp32,
        .output_precision = .fp32,
    }) catch |e| return report(&context, e);
    try out.print("seed example: batch 1, 1 head, seq {d}, head_dim {d}, fp32\n", .{ seq_len, head_dim });
    try summary(out, "  out", (try buffers[3].slice(f32)));
}

/// 2. Multi-head, GQA, causal, with LSE, through mfa.Params.
fn multiheadCausal(out: *std.Io.Writer, gpa: std.mem.Allocator) !void {
    const batch = 2;
    const seq = 128;
    const heads_q = 8;
    const heads_kv = 2;
    const dim = 64;
    const q = try gpa.alloc(f32, batch * seq * heads_q * dim);
    defer gpa.free(q);
    const k = try gpa.alloc(f32, batch * seq * heads_kv * dim);
    defer gpa.free(k);
    const v = try gpa.alloc(f32, k.len);
    defer gpa.free(v);
    const o = try gpa.alloc(f32, q.len);
    defer gpa.free(o);
    const lse = try gpa.alloc(f32, batch * heads_q * seq);
    defer gpa.free(lse);
    var rng: u64 = 2;
    fill(q, &rng);
    fill(k, &rng);
    fill(v, &rng);

    var ctx = mfa.Context.initDefault() catch |e| return report(null, e);
    defer ctx.deinit();
    ctx.forward(&.{
        .batch = batch,
        .seqlen_q = seq,
        .seqlen_kv = seq,
        .heads_q = heads_q, // GQA: 4 query heads per kv head
        .heads_kv = heads_kv,
        .head_dim_qk = dim,
        .head_dim_v = dim,
        .q = mfa.Tensor.of(@as([]const f32, q)).contiguous(seq, heads_q, dim), // [batch, seq, heads, dim]
        .k = mfa.Tensor.of(@as([]const f32, k)).contiguous(seq, heads_kv, dim),
        .v = mfa.Tensor.of(@as([]const f32, v)).contiguous(seq, heads_kv, dim),
        .o = mfa.Tensor.of(o).contiguous(seq, heads_q, dim),
        .lse = lse, // [batch, heads_q, seq]
        .mask = .causal,
    }) catch |e| return report(&ctx, e);
    try out.print("multi-head causal: batch {d}, heads {d}/{d} (GQA), seq {d}, head_dim {d}, fp32\n", .{ batch, heads_q, heads_kv, seq, dim });
    try summary(out, "  out", o);
    try summary(out, "  lse", lse);
}

/// Per-call cost on a tiny problem through the binding (Context.forward) and, interleaved in the
/// same process on the same context, through the raw C call (mfa.c.mfa_attention_fwd): the best
/// of 10 rounds of `calls` each.
fn bench(out: *std.Io.Writer, calls: u64) !void {
    var ctx = mfa.Context.init(.{ .backend = .cpu, .num_threads = 1 }) catch |e| return report(null, e);
    defer ctx.deinit();
    var q: [8]f32 = undefined;
    var k: [8]f32 = undefined;
    var v: [8]f32 = undefined;
    var o: [8]f32 = undefined;
    var o_direct: [8]f32 = undefined;
    var rng: u64 = 3;
    fill(&q, &rng);
    fill(&k, &rng);
    fill(&v, &rng);
    const p = mfa.Params{
        .batch = 1,
        .seqlen_q = 1,
        .seqlen_kv = 1,
        .heads_q = 1,
        .heads_kv = 1,
        .head_dim_qk = 8,
        .head_dim_v = 8,
        .q = mfa.Tensor.of(@as([]const f32, &q)).contiguous(1, 1, 8),
        .k = mfa.Tensor.of(@as([]const f32, &k)).contiguous(1, 1, 8),
        .v = mfa.Tensor.of(@as([]const f32, &v)).contiguous(1, 1, 8),
        .o = mfa.Tensor.of(@as([]f32, &o)).contiguous(1, 1, 8),
    };
    var raw: mfa.c.mfa_attention_params_t = undefined;
    mfa.c.mfa_attention_params_init(&raw);
    raw.batch = 1;
    raw.seqlen_q = 1;
    raw.seqlen_kv = 1;
    raw.heads_q = 1;
    raw.heads_kv = 1;
    raw.head_dim_qk = 8;
    raw.head_dim_v = 8;
    _ = mfa.c.mfa_tensor_contiguous(&raw.q, &q, mfa.c.MFA_DTYPE_F32, 1, 1, 8);
    _ = mfa.c.mfa_tensor_contiguous(&raw.k, &k, mfa.c.MFA_DTYPE_F32, 1, 1, 8);
    _ = mfa.c.mfa_tensor_contiguous(&raw.v, &v, mfa.c.MFA_DTYPE_F32, 1, 1, 8);
    _ = mfa.c.mfa_tensor_contiguous(&raw.o, &o_direct, mfa.c.MFA_DTYPE_F32, 1, 1, 8);
    var binding: f64 = std.math.inf(f64);
    var direct: f64 = std.math.inf(f64);
    const n: f64 = @floatFromInt(calls);
    for (0..10) |_| {
        var timer = try std.time.Timer.start();
        for (0..calls) |_| ctx.forward(&p) catch |e| return report(&ctx, e);
        binding = @min(binding, @as(f64, @floatFromInt(timer.lap())) / n / 1e3);
        for (0..calls) |_| {
            if (mfa.c.mfa_attention_fwd(ctx.raw, &raw) != mfa.c.MFA_SUCCESS) return error.DirectCallFailed;
        }
        direct = @min(direct, @as(f64, @floatFromInt(timer.read())) / n / 1e3);
    }
    try out.print("zig: {d:.3} us/call; direct C call {d:.3} us/call; overhead {d:.3} us (best of 10 x {d} calls each; batch 1, 1 head, seq 1, dim 8, 1 thread)\n", .{ binding, direct, binding - direct, calls });
}

pub fn main() !void {
    var gpa_state: std.heap.DebugAllocator(.{}) = .init;
    defer _ = gpa_state.deinit();
    const gpa = gpa_state.allocator();
    const args = try std.process.argsAlloc(gpa);
    defer std.process.argsFree(gpa, args);

    var buffer: [4096]u8 = undefined;
    var stdout = std.fs.File.stdout().writer(&buffer);
    const out = &stdout.interface;
    if (args.len > 1 and std.mem.eql(u8, args[1], "bench")) {
        const calls = if (args.len > 2) try std.fmt.parseUnsigned(u64, args[2], 10) else 200_000;
        try bench(out, calls);
    } else {
        const v = mfa.version();
        try out.print("libmfa {d}.{d}.{d}\n", .{ v.major, v.minor, v.patch });
        try seedExample(out);
        try multiheadCausal(out, gpa);
    }
    try out.flush();
}
