//! Test helpers: fresh random inputs (MFA_SEED replays a run), typed data, the project's
//! tolerance rule (tests/check/tolerance.h), and a small native float64 reference.
#![allow(dead_code)]

use mfa::{DType, Tensor, BF16, F16};
use std::sync::atomic::{AtomicU64, Ordering};

/// The run's seed: MFA_SEED if set, else the clock. Printed so a failure can be replayed.
pub fn seed() -> u64 {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let s = SEED.load(Ordering::Relaxed);
    if s != 0 {
        return s;
    }
    let s = match std::env::var("MFA_SEED") {
        Ok(v) => v.parse().expect("MFA_SEED must be an integer"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1,
    };
    SEED.store(s, Ordering::Relaxed);
    eprintln!("MFA_SEED={s}");
    s
}

/// splitmix64
pub struct Rng(u64);

impl Rng {
    pub fn new(stream: u64) -> Self {
        Rng(seed() ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

/// Elements of one dtype, convertible to f64 for comparison.
#[derive(Clone, Debug)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<F16>),
    BF16(Vec<BF16>),
}

impl Data {
    pub fn from_f32(dtype: DType, x: &[f32]) -> Data {
        match dtype {
            DType::F32 => Data::F32(x.to_vec()),
            DType::F16 => Data::F16(x.iter().map(|&v| F16::from_f32(v)).collect()),
            DType::BF16 => Data::BF16(x.iter().map(|&v| BF16::from_f32(v)).collect()),
            DType::Bool => panic!("not a float dtype"),
        }
    }
    /// n NaNs: outputs are poisoned so unwritten elements fail.
    pub fn nan(dtype: DType, n: usize) -> Data {
        Data::from_f32(dtype, &vec![f32::NAN; n])
    }
    pub fn view(&self, stride: [i64; 4]) -> Tensor<'_> {
        match self {
            Data::F32(v) => Tensor::new(v, stride),
            Data::F16(v) => Tensor::new(v, stride),
            Data::BF16(v) => Tensor::new(v, stride),
        }
    }
    pub fn view_mut(&mut self, stride: [i64; 4]) -> Tensor<'_> {
        match self {
            Data::F32(v) => Tensor::new_mut(v, stride),
            Data::F16(v) => Tensor::new_mut(v, stride),
            Data::BF16(v) => Tensor::new_mut(v, stride),
        }
    }
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::F16(v) => v.iter().map(|x| x.to_f32() as f64).collect(),
            Data::BF16(v) => v.iter().map(|x| x.to_f32() as f64).collect(),
        }
    }
}

/// tests/check/tolerance.h: |x - r| <= atol * rms(ref) + rtol * |r|, infinities equal, no NaN
/// (its values without the score term, which the small random scores here keep below 1e-5).
/// An all-zero reference (e.g. dq of a one-key problem: exactly 0 in exact arithmetic, ~1e-8 from
/// fp32 rounding) would make that bound 0; there rms is taken as 1, the scale of the inputs.
pub fn tolerance(dtype: DType, backward: bool) -> (f64, f64) {
    let eps = match dtype {
        DType::F16 => 1.0 / 1024.0,
        DType::BF16 => 1.0 / 128.0,
        _ => 0.0,
    };
    match (dtype, backward) {
        (DType::F32, _) => (2e-5, 2e-5),
        (_, false) => (eps, 2.0 * eps),
        (_, true) => (12.0 * eps, 12.0 * eps),
    }
}

/// Panics with the first few mismatches.
pub fn assert_close(what: &str, got: &[f64], reference: &[f64], (rtol, atol): (f64, f64)) {
    assert_eq!(got.len(), reference.len(), "{what}: lengths");
    let finite: Vec<f64> = reference.iter().copied().filter(|x| x.is_finite()).collect();
    let rms = (finite.iter().map(|x| x * x).sum::<f64>() / finite.len().max(1) as f64).sqrt();
    let rms = if rms > 0.0 { rms } else { 1.0 };
    let mut bad = Vec::new();
    for (i, (&x, &r)) in got.iter().zip(reference).enumerate() {
        let ok = if r.is_infinite() { x == r } else { (x - r).abs() <= atol * rms + rtol * r.abs() };
        if !ok {
            bad.push(format!("  [{i}] got {x:e}, reference {r:e}"));
        }
    }
    if !bad.is_empty() {
        let n = bad.len();
        bad.truncate(5);
        panic!("{what}: {n} of {} elements out of tolerance (seed {}):\n{}", got.len(), seed(), bad.join("\n"));
    }
}

/// Native float64 attention: q, k, v as f32 arrays with element strides in [batch, seq, head,
/// dim] order, GQA, optional causal mask with diagonal offset `diag` (0 = top-left, skv - sq =
/// bottom-right). Returns o as contiguous [batch, sq, hq, dv].
#[allow(clippy::too_many_arguments)]
pub fn reference_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    strides: [[i64; 4]; 3],
    (batch, sq, skv, hq, hkv, dqk, dv): (usize, usize, usize, usize, usize, usize, usize),
    causal_diag: Option<i64>,
) -> Vec<f64> {
    let at = |x: &[f32], s: [i64; 4], b: usize, t: usize, h: usize, d: usize| {
        x[(b as i64 * s[0] + t as i64 * s[1] + h as i64 * s[2] + d as i64 * s[3]) as usize] as f64
    };
    let scale = 1.0 / (dqk as f64).sqrt();
    let mut o = vec![0.0; batch * sq * hq * dv];
    for b in 0..batch {
        for h in 0..hq {
            let kh = h / (hq / hkv);
            for i in 0..sq {
                let keep = |j: usize| causal_diag.map_or(true, |d| j as i64 <= i as i64 + d);
                let scores: Vec<f64> = (0..skv)
                    .map(|j| {
                        if !keep(j) {
                            return f64::NEG_INFINITY;
                        }
                        (0..dqk).map(|d| at(q, strides[0], b, i, h, d) * at(k, strides[1], b, j, kh, d)).sum::<f64>() * scale
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue; // a row that keeps nothing is 0
                }
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for d in 0..dv {
                    let acc: f64 = (0..skv).map(|j| weights[j] * at(v, strides[2], b, j, kh, d)).sum();
                    o[((b * sq + i) * hq + h) * dv + d] = acc / sum;
                }
            }
        }
    }
    o
}
