//! The safe wrapper against the library's float64 reference backend (and, for plain cases, a
//! small native reference): fresh random inputs every run (MFA_SEED replays one), outputs
//! poisoned with NaN before each call, forward and backward, every feature the params carry.

mod common;

use common::*;
use mfa::{strides_bhsd, strides_bshd, Align, Backend, Context, DType, Params, Precision, SeedForward, Tensor};

#[derive(Clone, Copy, Debug)]
enum Mask {
    None,
    Causal(Align),
    Window(i64, i64, Align),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dense {
    None,
    /// bool [batch, 1 (broadcast over heads), sq, skv]
    BoolBroadcastHeads,
    /// f32 additive bias [batch, heads, sq, skv]
    F32Bias,
}

#[derive(Clone, Debug)]
struct Case {
    name: &'static str,
    batch: i64,
    sq: i64,
    skv: i64,
    hq: i64,
    hkv: i64,
    dqk: i64,
    dv: i64,
    dtype_in: DType,
    dtype_out: DType,
    bhsd: bool,
    mask: Mask,
    softcap: f32,
    dense: Dense,
    block: Option<(i64, i64)>,
    /// per-sequence (q, kv) lengths: a varlen batch
    varlen: Option<Vec<(i32, i32)>>,
}

impl Case {
    fn base(name: &'static str, batch: i64, (sq, skv): (i64, i64), (hq, hkv): (i64, i64), (dqk, dv): (i64, i64)) -> Case {
        Case {
            name,
            batch,
            sq,
            skv,
            hq,
            hkv,
            dqk,
            dv,
            dtype_in: DType::F32,
            dtype_out: DType::F32,
            bhsd: false,
            mask: Mask::None,
            softcap: 0.0,
            dense: Dense::None,
            block: None,
            varlen: None,
        }
    }
    /// Batch as the tensors see it (1 for a packed varlen batch).
    fn tb(&self) -> i64 {
        if self.varlen.is_some() {
            1
        } else {
            self.batch
        }
    }
    fn strides(&self, seq: i64, heads: i64, dim: i64) -> [i64; 4] {
        if self.bhsd {
            strides_bhsd(heads, seq, dim)
        } else {
            strides_bshd(seq, heads, dim)
        }
    }
    fn count(&self, seq: i64, heads: i64, dim: i64) -> usize {
        (self.tb() * seq * heads * dim) as usize
    }
    fn longest(&self) -> (i64, i64) {
        match &self.varlen {
            Some(lens) => (
                lens.iter().map(|l| l.0 as i64).max().unwrap_or(0),
                lens.iter().map(|l| l.1 as i64).max().unwrap_or(0),
            ),
            None => (self.sq, self.skv),
        }
    }
}

/// One case's inputs, shared by both contexts.
struct Inputs {
    q: Data,
    k: Data,
    v: Data,
    dout: Data,
    dense_bool: Vec<bool>,
    dense_f32: Vec<f32>,
    block_map: Vec<u8>,
    cu_q: Vec<i32>,
    cu_kv: Vec<i32>,
}

fn inputs(c: &Case, stream: u64) -> Inputs {
    let mut rng = Rng::new(stream);
    let (mq, mkv) = c.longest();
    let mut cu_q = vec![0];
    let mut cu_kv = vec![0];
    for &(lq, lkv) in c.varlen.iter().flatten() {
        cu_q.push(cu_q.last().unwrap() + lq);
        cu_kv.push(cu_kv.last().unwrap() + lkv);
    }
    let mask_len = (c.batch * mq * mkv) as usize;
    let (bq, bkv) = c.block.unwrap_or((1, 1));
    let blocks = (c.batch * c.hq * ((mq + bq - 1) / bq) * ((mkv + bkv - 1) / bkv)) as usize;
    Inputs {
        q: Data::from_f32(c.dtype_in, &rng.vec(c.count(c.sq, c.hq, c.dqk))),
        k: Data::from_f32(c.dtype_in, &rng.vec(c.count(c.skv, c.hkv, c.dqk))),
        v: Data::from_f32(c.dtype_in, &rng.vec(c.count(c.skv, c.hkv, c.dv))),
        dout: Data::from_f32(c.dtype_out, &rng.vec(c.count(c.sq, c.hq, c.dv))),
        dense_bool: (0..mask_len).map(|_| rng.uniform() < 0.6).collect(),
        dense_f32: rng.vec(mask_len * c.hq as usize).iter().map(|x| 2.0 * x).collect(),
        block_map: (0..blocks).map(|_| (rng.uniform() < 0.4) as u8).collect(),
        cu_q,
        cu_kv,
    }
}

/// The params every direction shares: sizes, q, k, v, masks, varlen.
fn shared<'a>(c: &Case, x: &'a Inputs) -> Params<'a> {
    let mut p = Params::new()
        .batch(c.batch)
        .seqlen(c.sq, c.skv)
        .heads(c.hq, c.hkv)
        .head_dims(c.dqk, c.dv)
        .softcap(c.softcap)
        .q(x.q.view(c.strides(c.sq, c.hq, c.dqk)))
        .k(x.k.view(c.strides(c.skv, c.hkv, c.dqk)))
        .v(x.v.view(c.strides(c.skv, c.hkv, c.dv)));
    p = match c.mask {
        Mask::None => p,
        Mask::Causal(a) => p.causal(a),
        Mask::Window(l, r, a) => p.window(l, r, a),
    };
    let (mq, mkv) = c.longest();
    p = match c.dense {
        Dense::None => p,
        Dense::BoolBroadcastHeads => p.attn_mask(Tensor::new(&x.dense_bool, [mq * mkv, 0, mkv, 1])),
        Dense::F32Bias => p.attn_mask(Tensor::new(&x.dense_f32, [c.hq * mq * mkv, mq * mkv, mkv, 1])),
    };
    if let Some((bq, bkv)) = c.block {
        let (rows, cols) = ((mq + bq - 1) / bq, (mkv + bkv - 1) / bkv);
        p = p.block_mask(&x.block_map, (bq, bkv), (rows, cols), [c.hq * rows * cols, rows * cols, cols, 1]);
    }
    if c.varlen.is_some() {
        p = p.varlen(&x.cu_q, &x.cu_kv);
    }
    p
}

struct Outputs {
    o: Vec<f64>,
    lse: Vec<f64>,
    grads: [Vec<f64>; 3],
}

fn run(ctx: &Context, c: &Case, x: &Inputs, backward: bool) -> Outputs {
    let o_stride = c.strides(c.sq, c.hq, c.dv);
    let mut o = Data::nan(c.dtype_out, c.count(c.sq, c.hq, c.dv));
    let mut lse = vec![f32::NAN; (c.tb() * c.hq * c.sq) as usize];
    let mut p = shared(c, x).o(o.view_mut(o_stride)).lse(&mut lse);
    ctx.forward(&mut p).unwrap_or_else(|e| panic!("{} forward on {}: {e}", c.name, ctx.backend_name()));
    let mut grads = [vec![], vec![], vec![]];
    if backward {
        let mut dq = Data::nan(c.dtype_out, c.count(c.sq, c.hq, c.dqk));
        let mut dk = Data::nan(c.dtype_out, c.count(c.skv, c.hkv, c.dqk));
        let mut dv = Data::nan(c.dtype_out, c.count(c.skv, c.hkv, c.dv));
        let mut p = shared(c, x)
            .o(o.view(o_stride))
            .lse_input(&lse)
            .dout(x.dout.view(o_stride))
            .dq(dq.view_mut(c.strides(c.sq, c.hq, c.dqk)))
            .dk(dk.view_mut(c.strides(c.skv, c.hkv, c.dqk)))
            .dv(dv.view_mut(c.strides(c.skv, c.hkv, c.dv)));
        ctx.backward(&mut p).unwrap_or_else(|e| panic!("{} backward on {}: {e}", c.name, ctx.backend_name()));
        grads = [dq.to_f64(), dk.to_f64(), dv.to_f64()];
    }
    Outputs { o: o.to_f64(), lse: lse.iter().map(|&x| x as f64).collect(), grads }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mut c = Case::base("gqa causal bottom-right, head_dim_v != head_dim_qk", 2, (37, 53), (6, 2), (40, 24));
    c.mask = Mask::Causal(Align::BottomRight);
    v.push(c);
    let mut c = Case::base("bhsd layout, sliding window", 1, (64, 64), (4, 4), (32, 32));
    c.bhsd = true;
    c.mask = Mask::Window(8, 0, Align::TopLeft);
    v.push(c);
    let mut c = Case::base("f16 in, bf16 out, softcap", 2, (33, 41), (2, 1), (64, 64));
    (c.dtype_in, c.dtype_out, c.softcap) = (DType::F16, DType::BF16, 20.0);
    v.push(c);
    let mut c = Case::base("bf16, dense bool mask broadcast over heads, block-sparse map", 2, (50, 70), (4, 2), (32, 32));
    (c.dtype_in, c.dtype_out) = (DType::BF16, DType::BF16);
    c.dense = Dense::BoolBroadcastHeads;
    c.block = Some((16, 16));
    c.mask = Mask::Causal(Align::TopLeft);
    v.push(c);
    let mut c = Case::base("additive f32 bias, f16 out", 1, (20, 30), (2, 2), (16, 16));
    (c.dense, c.dtype_out) = (Dense::F32Bias, DType::F16);
    v.push(c);
    let lens = vec![(5, 7), (17, 17), (0, 3), (9, 12)];
    let mut c = Case::base("varlen, causal bottom-right", lens.len() as i64, (31, 39), (4, 2), (32, 32));
    c.mask = Mask::Causal(Align::BottomRight);
    c.varlen = Some(lens);
    v.push(c);
    v.push(Case::base("tiny: one token, head_dim 8", 1, (1, 1), (1, 1), (8, 8)));
    v
}

fn contexts() -> (Context, Context) {
    let cpu = Context::with_backend(Backend::Cpu, 2).expect("cpu context");
    let reference = Context::with_backend(Backend::Reference, 0).expect("reference context");
    (cpu, reference)
}

#[test]
fn forward_and_backward_match_the_reference_backend() {
    let (cpu, reference) = contexts();
    for (i, c) in cases().iter().enumerate() {
        let x = inputs(c, i as u64);
        let got = run(&cpu, c, &x, true);
        let want = run(&reference, c, &x, true);
        assert_close(&format!("{}: o", c.name), &got.o, &want.o, tolerance(c.dtype_out, false));
        assert_close(&format!("{}: lse", c.name), &got.lse, &want.lse, tolerance(DType::F32, false));
        for (g, (name, w)) in got.grads.iter().zip(["dq", "dk", "dv"].iter().zip(&want.grads)) {
            assert_close(&format!("{}: {name}", c.name), g, w, tolerance(c.dtype_out, true));
        }
        eprintln!("ok: {}", c.name);
    }
}

#[test]
fn forward_matches_the_native_rust_reference() {
    let (cpu, reference) = contexts();
    for (align, name) in [(Align::TopLeft, "causal top-left"), (Align::BottomRight, "causal bottom-right")] {
        let mut c = Case::base(name, 2, (19, 29), (4, 2), (24, 16));
        c.mask = Mask::Causal(align);
        c.bhsd = align == Align::BottomRight;
        let x = inputs(&c, 100);
        let (Data::F32(q), Data::F32(k), Data::F32(v)) = (&x.q, &x.k, &x.v) else { unreachable!() };
        let strides = [c.strides(c.sq, c.hq, c.dqk), c.strides(c.skv, c.hkv, c.dqk), c.strides(c.skv, c.hkv, c.dv)];
        let diag = if align == Align::TopLeft { 0 } else { c.skv - c.sq };
        let shape = (2, 19, 29, 4, 2, 24, 16);
        let native = reference_attention(q, k, v, strides, shape, Some(diag));
        for ctx in [&cpu, &reference] {
            let got = run(ctx, &c, &x, false);
            // compare in BSHD order: the case's o may be BHSD
            let o_stride = c.strides(c.sq, c.hq, c.dv);
            let mut bshd = vec![0.0; got.o.len()];
            for b in 0..2i64 {
                for i in 0..19i64 {
                    for h in 0..4i64 {
                        for d in 0..16i64 {
                            let from = (b * o_stride[0] + i * o_stride[1] + h * o_stride[2] + d) as usize;
                            bshd[(((b * 19 + i) * 4 + h) * 16 + d) as usize] = got.o[from];
                        }
                    }
                }
            }
            assert_close(&format!("{name} on {} vs native", ctx.backend_name()), &bshd, &native, tolerance(DType::F32, false));
        }
    }
}

#[test]
fn seed_api_buffers_and_19_argument_forward() {
    let ctx = Context::new().expect("default context");
    let (batch, heads, sq, skv, dim) = (2u32, 3u32, 37u32, 53u32, 24u16);
    let nq = (batch * heads * sq) as usize * dim as usize;
    let nk = (batch * heads * skv) as usize * dim as usize;
    let mut rng = Rng::new(200);
    let (q, mut k, mut v) = (rng.vec(nq), rng.vec(nk), rng.vec(nk));
    let (k_ref, v_ref) = (k.clone(), v.clone());

    // q in a library buffer, k and v wrapped caller memory, out a library buffer
    let mut qb = ctx.create_buffer(nq * 4).unwrap();
    qb.as_mut_slice::<f32>().unwrap().copy_from_slice(&q);
    let kb = ctx.wrap(&mut k).unwrap();
    let vb = ctx.wrap(&mut v).unwrap();
    let mut ob = ctx.create_buffer(nq * 4).unwrap();
    ob.as_mut_slice::<f32>().unwrap().fill(f32::NAN);
    let args = SeedForward {
        batch_size: batch,
        seq_len_q: sq,
        seq_len_kv: skv,
        num_heads: heads,
        head_dim: dim,
        softmax_scale: 1.0 / (dim as f32).sqrt(),
        causal: true,
        input_precision: Precision::FP32,
        intermediate_precision: Precision::FP32,
        output_precision: Precision::FP32,
        transpose_q: false,
        transpose_k: false,
        transpose_v: false,
        transpose_o: false,
    };
    ctx.attention_forward(&qb, &kb, &vb, &mut ob, &args).unwrap();
    let (h, s_q, s_k, d) = (heads as i64, sq as i64, skv as i64, dim as i64);
    let strides = [strides_bhsd(h, s_q, d), strides_bhsd(h, s_k, d), strides_bhsd(h, s_k, d)];
    let shape = (batch as usize, sq as usize, skv as usize, heads as usize, heads as usize, dim as usize, dim as usize);
    let native = reference_attention(&q, &k_ref, &v_ref, strides, shape, Some(0));
    let out = ob.as_slice::<f32>().unwrap();
    // seed layout is BHSD; native is BSHD
    let mut got = vec![0.0; nq];
    for b in 0..batch as i64 {
        for i in 0..s_q {
            for hh in 0..h {
                for dd in 0..d {
                    got[(((b * s_q + i) * h + hh) * d + dd) as usize] = out[(((b * h + hh) * s_q + i) * d + dd) as usize] as f64;
                }
            }
        }
    }
    assert_close("seed forward (multi-head, causal) vs native", &got, &native, tolerance(DType::F32, false));
}

#[test]
fn device_support_and_version() {
    assert!(mfa::is_device_supported());
    assert_eq!(mfa::version(), (mfa::sys::MFA_VERSION_MAJOR, mfa::sys::MFA_VERSION_MINOR, mfa::sys::MFA_VERSION_PATCH));
    let ctx = Context::with_backend(Backend::Cpu, 1).unwrap();
    assert_eq!(ctx.backend_name(), "cpu");
    assert_eq!(ctx.num_threads(), 1);
    assert!(ctx.description().starts_with("cpu"));
    fn assert_send<T: Send>() {}
    assert_send::<Context>();
}
