//! The libmfa example every binding repeats (see examples/c/attention.c), through the safe `mfa`
//! crate: the seed README's program (library buffers, the 19-argument forward), then multi-head
//! GQA causal attention with the log-sum-exp through the params builder. Prints the same numbers
//! as the C program.
//!
//! `attention bench [calls]` times the per-call cost on a tiny shape (batch 1, 1 head, seq 1,
//! dim 8, one cpu thread) through the binding and through the raw C call, in the same process.
//!
//! Run: cargo run --release --manifest-path examples/rust/Cargo.toml [-- bench]

use std::time::Instant;

use mfa::{Align, Backend, Context, Params, Precision, SeedForward, Tensor};

/// The example's inputs: uniform in [-1, 1), the same sequence in every language.
fn fill(x: &mut [f32], state: &mut u64) {
    for v in x {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *v = ((*state >> 40) & 0xff_ffff) as f32 / 16_777_216.0 * 2.0 - 1.0;
    }
}

fn summary(name: &str, x: &[f32]) {
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    println!("{name}[0..4] = {:.6} {:.6} {:.6} {:.6}  sum = {sum:.6}", x[0], x[1], x[2], x[3]);
}

/// 1. The seed README's example.
fn seed_example() -> mfa::Result<()> {
    let (seq_len, head_dim) = (128u32, 64u16);
    let count = seq_len as usize * head_dim as usize;
    let context = Context::new()?;
    let mut q = context.create_buffer(count * 4)?;
    let mut k = context.create_buffer(count * 4)?;
    let mut v = context.create_buffer(count * 4)?;
    let mut o = context.create_buffer(count * 4)?;
    let mut rng = 1;
    for buffer in [&mut q, &mut k, &mut v] {
        fill(buffer.as_mut_slice::<f32>()?, &mut rng);
    }
    let args = SeedForward {
        batch_size: 1,
        seq_len_q: seq_len,
        seq_len_kv: seq_len,
        num_heads: 1,
        head_dim,
        softmax_scale: 1.0 / (head_dim as f32).sqrt(),
        causal: false,
        input_precision: Precision::FP32,
        intermediate_precision: Precision::FP32,
        output_precision: Precision::FP32,
        transpose_q: false,
        transpose_k: false,
        transpose_v: false,
        transpose_o: false,
    };
    context.attention_forward(&q, &k, &v, &mut o, &args)?;
    println!("seed example: batch 1, 1 head, seq {seq_len}, head_dim {head_dim}, fp32");
    summary("  out", o.as_slice::<f32>()?);
    Ok(())
}

/// 2. Multi-head, GQA, causal, with LSE, through the params builder.
fn multihead_causal() -> mfa::Result<()> {
    const BATCH: i64 = 2;
    const SEQ: i64 = 128;
    const HEADS_Q: i64 = 8;
    const HEADS_KV: i64 = 2;
    const DIM: i64 = 64;
    let mut q = vec![0f32; (BATCH * SEQ * HEADS_Q * DIM) as usize];
    let mut k = vec![0f32; (BATCH * SEQ * HEADS_KV * DIM) as usize];
    let mut v = vec![0f32; k.len()];
    let mut o = vec![0f32; q.len()];
    let mut lse = vec![0f32; (BATCH * HEADS_Q * SEQ) as usize];
    let mut rng = 2;
    fill(&mut q, &mut rng);
    fill(&mut k, &mut rng);
    fill(&mut v, &mut rng);

    let ctx = Context::new()?;
    let mut p = Params::new()
        .batch(BATCH)
        .seqlen(SEQ, SEQ)
        .heads(HEADS_Q, HEADS_KV) // GQA: 4 query heads per kv head
        .head_dim(DIM)
        .q(Tensor::contiguous(&q, SEQ, HEADS_Q, DIM)) // [batch, seq, heads, dim]
        .k(Tensor::contiguous(&k, SEQ, HEADS_KV, DIM))
        .v(Tensor::contiguous(&v, SEQ, HEADS_KV, DIM))
        .o(Tensor::contiguous_mut(&mut o, SEQ, HEADS_Q, DIM))
        .lse(&mut lse) // [batch, heads_q, seq]
        .causal(Align::TopLeft);
    ctx.forward(&mut p)?;
    println!("multi-head causal: batch {BATCH}, heads {HEADS_Q}/{HEADS_KV} (GQA), seq {SEQ}, head_dim {DIM}, fp32");
    summary("  out", &o);
    summary("  lse", &lse);
    Ok(())
}

/// Per-call cost on a tiny problem through the binding (Context::forward) and, interleaved in the
/// same process on the same context, through the raw C call (mfa_sys::mfa_attention_fwd): the
/// best of 10 rounds of `calls` each.
fn bench(calls: u32) -> mfa::Result<()> {
    let ctx = Context::with_backend(Backend::Cpu, 1)?;
    let (mut q, mut k, mut v, mut o) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
    let mut rng = 3;
    fill(&mut q, &mut rng);
    fill(&mut k, &mut rng);
    fill(&mut v, &mut rng);
    let mut o_direct = o;
    let mut raw = *Params::new().batch(1).seqlen(1, 1).heads(1, 1).head_dim(8).as_raw();
    // SAFETY: four live arrays of 8 floats, contiguous [1, 1, 1, 8].
    unsafe {
        mfa::sys::mfa_tensor_contiguous(&mut raw.q, q.as_mut_ptr().cast(), mfa::sys::MFA_DTYPE_F32, 1, 1, 8);
        mfa::sys::mfa_tensor_contiguous(&mut raw.k, k.as_mut_ptr().cast(), mfa::sys::MFA_DTYPE_F32, 1, 1, 8);
        mfa::sys::mfa_tensor_contiguous(&mut raw.v, v.as_mut_ptr().cast(), mfa::sys::MFA_DTYPE_F32, 1, 1, 8);
        mfa::sys::mfa_tensor_contiguous(&mut raw.o, o_direct.as_mut_ptr().cast(), mfa::sys::MFA_DTYPE_F32, 1, 1, 8);
    }
    let mut p = Params::new()
        .batch(1)
        .seqlen(1, 1)
        .heads(1, 1)
        .head_dim(8)
        .q(Tensor::contiguous(&q, 1, 1, 8))
        .k(Tensor::contiguous(&k, 1, 1, 8))
        .v(Tensor::contiguous(&v, 1, 1, 8))
        .o(Tensor::contiguous_mut(&mut o, 1, 1, 8));
    let (mut binding, mut direct) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..10 {
        let start = Instant::now();
        for _ in 0..calls {
            ctx.forward(&mut p)?;
        }
        binding = binding.min(start.elapsed().as_secs_f64() / calls as f64 * 1e6);
        let start = Instant::now();
        for _ in 0..calls {
            // SAFETY: raw points at live arrays; the context is live.
            let code = unsafe { mfa::sys::mfa_attention_fwd(ctx.as_raw(), &raw) };
            assert_eq!(code, 0);
        }
        direct = direct.min(start.elapsed().as_secs_f64() / calls as f64 * 1e6);
    }
    println!(
        "rust: {binding:.3} us/call; direct C call {direct:.3} us/call; overhead {:.3} us \
         (best of 10 x {calls} calls each; batch 1, 1 head, seq 1, dim 8, 1 thread)",
        binding - direct
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).map(String::as_str) == Some("bench") {
        bench(args.get(2).map_or(200_000, |n| n.parse().expect("calls: a number")))
    } else {
        let (major, minor, patch) = mfa::version();
        println!("libmfa {major}.{minor}.{patch}");
        seed_example().and_then(|()| multihead_causal())
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
