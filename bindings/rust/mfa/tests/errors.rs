//! Error paths: every bad input comes back as an `Err` with the library's code and message (or
//! the wrapper's, for what only the wrapper can see); nothing panics, nothing is written.

use mfa::{Backend, Context, DType, Direction, ErrorCode, Options, Params, Precision, SeedForward, Tensor};

const S: i64 = 4;
const D: i64 = 8;

fn cpu() -> Context {
    Context::with_backend(Backend::Cpu, 1).unwrap()
}

/// A valid single-head problem over the given arrays.
fn params<'a>(q: &'a [f32], k: &'a [f32], v: &'a [f32], o: &'a mut [f32]) -> Params<'a> {
    Params::new()
        .batch(1)
        .seqlen(S, S)
        .heads(1, 1)
        .head_dim(D)
        .q(Tensor::contiguous(q, S, 1, D))
        .k(Tensor::contiguous(k, S, 1, D))
        .v(Tensor::contiguous(v, S, 1, D))
        .o(Tensor::contiguous_mut(o, S, 1, D))
}

#[test]
fn bad_head_counts_give_the_library_message_and_write_nothing() {
    let ctx = cpu();
    let (hq, hkv) = (12, 5);
    let q = vec![0.5f32; (S * hq * D) as usize];
    let kv = vec![0.5f32; (S * hkv * D) as usize];
    let mut o = vec![f32::NAN; q.len()];
    let mut p = Params::new()
        .batch(1)
        .seqlen(S, S)
        .heads(hq, hkv)
        .head_dim(D)
        .q(Tensor::contiguous(&q, S, hq, D))
        .k(Tensor::contiguous(&kv, S, hkv, D))
        .v(Tensor::contiguous(&kv, S, hkv, D))
        .o(Tensor::contiguous_mut(&mut o, S, hq, D));
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgs);
    assert_eq!(err.message(), "heads_q=12 is not a multiple of heads_kv=5");
    assert_eq!(err.to_string(), "invalid argument: heads_q=12 is not a multiple of heads_kv=5");
    assert_eq!(ctx.supported(&p, Direction::Forward).unwrap_err(), err);
    assert!(o.iter().all(|x| x.is_nan()), "nothing is written on error");
}

#[test]
fn a_slice_too_short_is_out_of_bounds_not_a_read_past_it() {
    let ctx = cpu();
    let n = (S * D) as usize;
    let (q, k, v) = (vec![0f32; n - 1], vec![0f32; n], vec![0f32; n]);
    let mut o = vec![f32::NAN; n];
    let err = ctx.forward(&mut params(&q, &k, &v, &mut o)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfBounds);
    assert!(err.message().starts_with("q: reaches bytes [0, 128)"), "{}", err.message());
    assert!(err.message().contains("buffer holds 124 bytes"), "{}", err.message());
    // a stride that walks off the end of o
    let q = vec![0f32; n];
    let mut small = [0f32; 32];
    let mut p = params(&q, &k, &v, &mut o).o(Tensor::new_mut(&mut small, [0, 2 * D, D, 1]));
    assert_eq!(ctx.forward(&mut p).unwrap_err().code(), ErrorCode::OutOfBounds);
}

#[test]
fn wrapper_checks_what_the_c_struct_cannot_see() {
    let ctx = cpu();
    let n = (S * D) as usize;
    let (q, k, v) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    let o_in = vec![0f32; n];
    let mut o = vec![f32::NAN; n];

    // a read-only view as the forward's output
    let mut p = params(&q, &k, &v, &mut o).o(Tensor::contiguous(&o_in, S, 1, D));
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgs);
    assert!(err.message().contains("o is a read-only view"), "{}", err.message());

    // lse shorter than [batch, heads_q, seqlen_q]
    let mut lse = vec![0f32; (S - 1) as usize];
    let mut p = params(&q, &k, &v, &mut o).lse(&mut lse);
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfBounds);
    assert!(err.message().starts_with("lse: the slice holds 3 floats"), "{}", err.message());

    // varlen offsets shorter than batch + 1
    let cu = [0, S as i32];
    let mut p = params(&q, &k, &v, &mut o).batch(2).varlen(&cu, &cu);
    assert_eq!(ctx.forward(&mut p).unwrap_err().code(), ErrorCode::OutOfBounds);

    // a block map smaller than its declared shape
    let map = [1u8; 3];
    let mut p = params(&q, &k, &v, &mut o).block_mask(&map, (2, 2), (2, 2), [4, 4, 2, 1]);
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfBounds);
    assert!(err.message().starts_with("block_mask:"), "{}", err.message());
    // ... while a wrong declared shape is the library's to reject
    let map = [1u8; 9];
    let mut p = params(&q, &k, &v, &mut o).block_mask(&map, (2, 2), (3, 3), [0, 0, 3, 1]);
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgs);
    assert!(err.message().starts_with("block_mask shape [3, 3] does not match"), "{}", err.message());
    assert!(o.iter().all(|x| x.is_nan()));
}

#[test]
fn missing_and_mismatched_inputs() {
    let ctx = cpu();
    let n = (S * D) as usize;
    let (q, k, v) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    let mut o = vec![f32::NAN; n];
    // no q at all
    let mut p = Params::new().batch(1).seqlen(S, S).heads(1, 1).head_dim(D);
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NullPointer);
    assert_eq!(err.message(), "q.data is NULL (and no buffer is set)");
    // sizes never set
    let err = ctx.forward(&mut Params::new()).unwrap_err();
    assert_eq!(err.message(), "batch=0 must be at least 1");
    // backward without lse
    let mut dq = vec![0f32; n];
    let mut p = params(&q, &k, &v, &mut o).dout(Tensor::contiguous(&v, S, 1, D)).dq(Tensor::contiguous_mut(&mut dq, S, 1, D));
    let err = ctx.backward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NullPointer);
    assert!(err.message().starts_with("lse is NULL"), "{}", err.message());
    // a head dim beyond the backend's maximum
    let big = vec![0f32; 4 * 4096];
    let mut big_o = vec![0f32; 4 * 4096];
    let mut p = Params::new()
        .batch(1)
        .seqlen(4, 4)
        .heads(1, 1)
        .head_dim(4096)
        .q(Tensor::contiguous(&big, 4, 1, 4096))
        .k(Tensor::contiguous(&big, 4, 1, 4096))
        .v(Tensor::contiguous(&big, 4, 1, 4096))
        .o(Tensor::contiguous_mut(&mut big_o, 4, 1, 4096));
    let err = ctx.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported);
    assert!(err.message().starts_with("head_dim_qk=4096 exceeds the cpu backend's maximum"), "{}", err.message());
}

#[test]
fn buffers_belong_to_their_context() {
    let (a, b) = (cpu(), cpu());
    let n = (S * D) as usize;
    let (k, v) = (vec![0f32; n], vec![0f32; n]);
    let mut o = vec![0f32; n];
    let qb = a.create_buffer(n * 4).unwrap();
    let mut p = params(&k, &k, &v, &mut o).q(Tensor::from_buffer(&qb, DType::F32, 0, mfa::strides_bshd(S, 1, D)));
    assert!(a.forward(&mut p).is_ok());
    let err = b.forward(&mut p).unwrap_err();
    assert_eq!(err.code(), ErrorCode::WrongContext);
    // a byte offset that leaves too little of the buffer
    let mut p = params(&k, &k, &v, &mut o).q(Tensor::from_buffer(&qb, DType::F32, 8, mfa::strides_bshd(S, 1, D)));
    assert_eq!(a.forward(&mut p).unwrap_err().code(), ErrorCode::OutOfBounds);
}

#[test]
fn seed_forward_errors() {
    let ctx = cpu();
    let q = ctx.create_buffer(64 * 4).unwrap();
    let mut out = ctx.create_buffer(64 * 4).unwrap();
    let mut args = SeedForward {
        batch_size: 1,
        seq_len_q: 8,
        seq_len_kv: 8,
        num_heads: 1,
        head_dim: 0,
        softmax_scale: 0.0,
        causal: false,
        input_precision: Precision::FP32,
        intermediate_precision: Precision::FP32,
        output_precision: Precision::FP32,
        transpose_q: false,
        transpose_k: false,
        transpose_v: false,
        transpose_o: false,
    };
    let err = ctx.attention_forward(&q, &q, &q, &mut out, &args).unwrap_err();
    assert_eq!(err.message(), "mfa_attention_forward: head_dim=0 must be at least 1");
    args.head_dim = 16; // 8 x 16 floats do not fit in 64
    let err = ctx.attention_forward(&q, &q, &q, &mut out, &args).unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfBounds);
}

#[test]
fn context_creation_errors() {
    let err = Context::with_options(&Options { num_threads: -1, ..Options::default() }).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgs);
    assert_eq!(err.message(), "options->num_threads=-1 is negative");
    let err = Context::with_options(&Options { device: -2, ..Options::default() }).unwrap_err();
    assert_eq!(err.message(), "options->device=-2 is negative");
    // CUDA: works where the plugin and a GPU exist, else a clean DeviceNotSupported
    match Context::with_backend(Backend::Cuda, 0) {
        Ok(ctx) => assert_eq!(ctx.backend_name(), "cuda"),
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::DeviceNotSupported);
            assert!(!e.message().is_empty());
            eprintln!("cuda context: {e}");
        }
    }
}

#[test]
fn library_buffers_on_the_cpu_backend_are_zeroed_host_memory() {
    // Library buffers on the cpu backend are host memory and viewable.
    let ctx = cpu();
    let mut b = ctx.create_buffer(16).unwrap();
    assert_eq!(b.as_mut_slice::<f32>().unwrap().len(), 4);
    assert!(b.as_slice::<u8>().unwrap().iter().all(|&x| x == 0), "zero-filled");
    // host copies in and out, bounds-checked by the library
    b.copy_from_host(4, &[1.5f32, 2.5]).unwrap();
    let mut back = [0f32; 4];
    b.copy_to_host(0, &mut back).unwrap();
    assert_eq!(back, [0.0, 1.5, 2.5, 0.0]);
    let err = b.copy_from_host(12, &[1f32, 2.0]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfBounds);
    assert_eq!(err.message(), "mfa_buffer_copy_from_host: bytes [12, 12 + 8) exceed the buffer's 16 bytes");
    // streams and timing are no-ops on the cpu
    assert!(ctx.synchronize().is_ok());
    assert_eq!(ctx.gpu_latency(), 0.0);
    // SAFETY: null is the default stream.
    unsafe { ctx.set_stream(std::ptr::null_mut()).unwrap() };
    assert!(ctx.stream().is_null());
    let err = ctx.create_buffer(0).unwrap_err();
    assert_eq!(err.message(), "mfa_create_buffer: size_bytes=0; a buffer must hold at least one byte");
}
