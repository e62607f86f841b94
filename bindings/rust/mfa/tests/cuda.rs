//! Device pointers on a CUDA context (docs/bindings.md, "Device pointers on a CUDA context"):
//! raw device pointers (`Tensor::from_raw`, `Params::lse_raw`) and device buffers of the context
//! (`Tensor::from_buffer`) through forward and backward, compared with the reference backend on
//! the host; uploads and downloads with the library's own buffer copies; host slices refused.
//!
//! Skipped, with the reason printed, where no CUDA context can be created (no plugin, no GPU).

mod common;

use common::*;
use mfa::{Align, Backend, Buffer, Context, DType, ErrorCode, Params, Tensor, BF16};

fn cuda_context() -> Option<Context> {
    match Context::with_backend(Backend::Cuda, 0) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            eprintln!("skipped: no CUDA context ({e})");
            None
        }
    }
}

/// A device buffer of the context holding `host`.
fn upload<'a>(ctx: &'a Context, host: &[f32]) -> Buffer<'a> {
    let mut b = ctx.create_buffer(std::mem::size_of_val(host)).unwrap();
    b.copy_from_host(0, host).unwrap();
    b
}

fn download(b: &Buffer<'_>, n: usize) -> Vec<f64> {
    let mut host = vec![f32::NAN; n];
    b.copy_to_host(0, &mut host).unwrap();
    host.iter().map(|&x| x as f64).collect()
}

#[test]
fn raw_device_pointers_forward_and_backward() {
    let Some(ctx) = cuda_context() else { return };
    let reference = Context::with_backend(Backend::Reference, 0).unwrap();
    let (b, sq, skv, hq, hkv, d) = (2i64, 37i64, 53i64, 6i64, 2i64, 64i64);
    let n = |s: i64, h: i64| (b * s * h * d) as usize;
    let nlse = (b * hq * sq) as usize;
    let mut rng = Rng::new(300);
    let (q, k, v, dout) = (rng.vec(n(sq, hq)), rng.vec(n(skv, hkv)), rng.vec(n(skv, hkv)), rng.vec(n(sq, hq)));
    let nan = |len: usize| vec![f32::NAN; len];
    let (qd, kd, vd, doutd) = (upload(&ctx, &q), upload(&ctx, &k), upload(&ctx, &v), upload(&ctx, &dout));
    let (od, lsed) = (upload(&ctx, &nan(q.len())), upload(&ctx, &nan(nlse)));
    let (dqd, dkd, dvd) = (upload(&ctx, &nan(q.len())), upload(&ctx, &nan(k.len())), upload(&ctx, &nan(v.len())));

    let shape = |p: Params<'static>| p.batch(b).seqlen(sq, skv).heads(hq, hkv).head_dim(d).causal(Align::BottomRight);
    // SAFETY: each pointer is the device memory of a live buffer holding the extent the params
    // describe; the buffers outlive the calls and are read back only after synchronize().
    let dev = |x: &Buffer<'_>, s: i64, h: i64| unsafe {
        Tensor::from_raw(x.contents_ptr(), DType::F32, mfa::strides_bshd(s, h, d))
    };
    let mut p = unsafe { shape(Params::new()).lse_raw(lsed.contents_ptr().cast()) }
        .q(dev(&qd, sq, hq))
        .k(dev(&kd, skv, hkv))
        .v(dev(&vd, skv, hkv))
        .o(dev(&od, sq, hq));
    ctx.forward(&mut p).unwrap_or_else(|e| panic!("cuda forward: {e}"));
    let mut p = p.dout(dev(&doutd, sq, hq)).dq(dev(&dqd, sq, hq)).dk(dev(&dkd, skv, hkv)).dv(dev(&dvd, skv, hkv));
    ctx.backward(&mut p).unwrap_or_else(|e| panic!("cuda backward: {e}"));
    ctx.synchronize().unwrap_or_else(|e| panic!("cuda synchronize: {e}"));
    let latency = ctx.gpu_latency();
    let got = [download(&od, q.len()), download(&lsed, nlse), download(&dqd, q.len()), download(&dkd, k.len()),
               download(&dvd, v.len())];

    // the same on the reference backend, host slices
    let (mut ro, mut rlse) = (nan(q.len()), nan(nlse));
    let (mut rdq, mut rdk, mut rdv) = (nan(q.len()), nan(k.len()), nan(v.len()));
    let mut p = shape(Params::new())
        .q(Tensor::contiguous(&q, sq, hq, d))
        .k(Tensor::contiguous(&k, skv, hkv, d))
        .v(Tensor::contiguous(&v, skv, hkv, d))
        .o(Tensor::contiguous_mut(&mut ro, sq, hq, d))
        .lse(&mut rlse);
    reference.forward(&mut p).unwrap();
    let mut p = shape(Params::new())
        .q(Tensor::contiguous(&q, sq, hq, d))
        .k(Tensor::contiguous(&k, skv, hkv, d))
        .v(Tensor::contiguous(&v, skv, hkv, d))
        .o(Tensor::contiguous(&ro, sq, hq, d))
        .lse_input(&rlse)
        .dout(Tensor::contiguous(&dout, sq, hq, d))
        .dq(Tensor::contiguous_mut(&mut rdq, sq, hq, d))
        .dk(Tensor::contiguous_mut(&mut rdk, skv, hkv, d))
        .dv(Tensor::contiguous_mut(&mut rdv, skv, hkv, d));
    reference.backward(&mut p).unwrap();
    let f64s = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let want = [f64s(&ro), f64s(&rlse), f64s(&rdq), f64s(&rdk), f64s(&rdv)];
    for (i, name) in ["o", "lse", "dq", "dk", "dv"].iter().enumerate() {
        assert_close(&format!("cuda {name}"), &got[i], &want[i], tolerance(DType::F32, i >= 2));
    }
    eprintln!("cuda ({}): raw device pointers, forward + backward match the reference; last call {:.1} us",
              ctx.description(), latency * 1e6);
}

#[test]
fn device_buffers_are_bounds_checked_and_host_slices_refused() {
    let Some(ctx) = cuda_context() else { return };
    let (s, h, d) = (33i64, 4i64, 32i64);
    let count = (s * h * d) as usize;
    let mut rng = Rng::new(301);
    let data: Vec<Vec<BF16>> = (0..3).map(|_| rng.vec(count).iter().map(|&x| BF16::from_f32(x)).collect()).collect();
    let bytes = count * 2;
    let mut buffers: Vec<Buffer<'_>> = (0..4).map(|_| ctx.create_buffer(bytes).unwrap()).collect();
    for (buffer, host) in buffers.iter_mut().zip(&data) {
        buffer.copy_from_host(0, host).unwrap();
    }
    assert!(buffers[3].as_slice::<u8>().is_err(), "device buffers are not viewable from the host");
    let st = mfa::strides_bshd(s, h, d);
    let (inputs, out) = buffers.split_at_mut(3);
    let mut p = Params::new()
        .batch(1)
        .seqlen(s, s)
        .heads(h, h)
        .head_dim(d)
        .causal(Align::TopLeft)
        .q(Tensor::from_buffer(&inputs[0], DType::BF16, 0, st))
        .k(Tensor::from_buffer(&inputs[1], DType::BF16, 0, st))
        .v(Tensor::from_buffer(&inputs[2], DType::BF16, 0, st))
        .o(Tensor::from_buffer_mut(&mut out[0], DType::BF16, 0, st));
    ctx.forward(&mut p).unwrap_or_else(|e| panic!("cuda forward on buffers: {e}"));
    // a view reaching past its device buffer is refused by the library, not faulted on the GPU
    let mut past = Params::new()
        .batch(1)
        .seqlen(s + 1, s)
        .heads(h, h)
        .head_dim(d)
        .q(Tensor::from_buffer(&inputs[0], DType::BF16, 0, st))
        .k(Tensor::from_buffer(&inputs[1], DType::BF16, 0, st))
        .v(Tensor::from_buffer(&inputs[2], DType::BF16, 0, st))
        .o(Tensor::from_buffer_mut(&mut out[0], DType::BF16, 0, st));
    assert_eq!(ctx.supported(&past, mfa::Direction::Forward).unwrap_err().code(), ErrorCode::OutOfBounds);
    assert_eq!(ctx.forward(&mut past).unwrap_err().code(), ErrorCode::OutOfBounds);
    let mut o = vec![BF16(0); count];
    buffers[3].copy_to_host(0, &mut o).unwrap();

    let reference = Context::with_backend(Backend::Reference, 0).unwrap();
    let mut want = Data::nan(DType::BF16, count);
    let inputs: Vec<Data> = data.iter().map(|x| Data::BF16(x.clone())).collect();
    let mut p = Params::new()
        .batch(1)
        .seqlen(s, s)
        .heads(h, h)
        .head_dim(d)
        .causal(Align::TopLeft)
        .q(inputs[0].view(st))
        .k(inputs[1].view(st))
        .v(inputs[2].view(st))
        .o(want.view_mut(st));
    reference.forward(&mut p).unwrap();
    assert_close("cuda bf16 o (buffers)", &Data::BF16(o).to_f64(), &want.to_f64(), tolerance(DType::BF16, false));

    // host slices on a device context
    let host = vec![0f32; count];
    let mut host_o = vec![0f32; count];
    let mut p = Params::new()
        .batch(1)
        .seqlen(s, s)
        .heads(h, h)
        .head_dim(d)
        .q(Tensor::contiguous(&host, s, h, d))
        .k(Tensor::contiguous(&host, s, h, d))
        .v(Tensor::contiguous(&host, s, h, d))
        .o(Tensor::contiguous_mut(&mut host_o, s, h, d));
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgs);
    assert!(err.message().contains("host slice"), "{}", err.message());
}
