package mfa

// Device memory on a CUDA context (docs/bindings.md, "Device pointers on a CUDA context"): raw
// device addresses (DevicePtr, LSEDevice) and device buffers of the context (Buffer.Tensor)
// through forward and backward, compared with the reference backend on the host; uploads and
// downloads with the library's buffer copies; Go slices refused. Skipped where no CUDA context
// can be created (no plugin, no GPU).

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func cudaContext(t *testing.T) *Context {
	ctx, err := NewContextWithOptions(Options{Backend: BackendCUDA})
	if err != nil {
		t.Skipf("no CUDA context: %v", err)
	}
	t.Cleanup(func() { ctx.Close() })
	return ctx
}

func nans32(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

func f64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// upload returns a device buffer of ctx holding x.
func upload(t *testing.T, ctx *Context, x []float32) *Buffer {
	t.Helper()
	b, err := ctx.CreateBuffer(len(x) * 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := CopyFromHost(b, 0, x); err != nil {
		t.Fatal(err)
	}
	return b
}

func download(t *testing.T, b *Buffer, n int) []float64 {
	t.Helper()
	x := nans32(n)
	if err := CopyToHost(b, 0, x); err != nil {
		t.Fatal(err)
	}
	return f64s(x)
}

func TestCUDADevicePointers(t *testing.T) {
	ctx := cudaContext(t)
	const b, sq, skv, hq, hkv, d = 2, 37, 53, 6, 2, 64
	r := newRng(300)
	q, k, v, dout := r.vec(b*sq*hq*d), r.vec(b*skv*hkv*d), r.vec(b*skv*hkv*d), r.vec(b*sq*hq*d)
	qd, kd, vd, doutd := upload(t, ctx, q), upload(t, ctx, k), upload(t, ctx, v), upload(t, ctx, dout)
	od, lsed := upload(t, ctx, nans32(len(q))), upload(t, ctx, nans32(b*hq*sq))
	dqd, dkd, dvd := upload(t, ctx, nans32(len(q))), upload(t, ctx, nans32(len(k))), upload(t, ctx, nans32(len(v)))
	dev := func(x *Buffer, s, h int64) Tensor {
		return DevicePtr(uintptr(x.Pointer()), DTypeF32).Contiguous(s, h, d)
	}
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = b, sq, skv, hq, hkv, d, d
	p.Mask, p.Align = MaskCausal, AlignBottomRight
	p.Q, p.K, p.V, p.O = dev(qd, sq, hq), dev(kd, skv, hkv), dev(vd, skv, hkv), dev(od, sq, hq)
	p.LSEDevice = uintptr(lsed.Pointer())
	if err := ctx.Forward(&p); err != nil {
		t.Fatalf("cuda forward: %v", err)
	}
	p.DOut, p.DQ, p.DK, p.DV = dev(doutd, sq, hq), dev(dqd, sq, hq), dev(dkd, skv, hkv), dev(dvd, skv, hkv)
	if err := ctx.Backward(&p); err != nil {
		t.Fatalf("cuda backward: %v", err)
	}
	if err := ctx.Synchronize(); err != nil {
		t.Fatalf("cuda synchronize: %v", err)
	}
	got := [][]float64{download(t, od, len(q)), download(t, lsed, b*hq*sq), download(t, dqd, len(q)),
		download(t, dkd, len(k)), download(t, dvd, len(v))}

	ref, err := NewContextWithOptions(Options{Backend: BackendReference})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	ro, rlse, rdq, rdk, rdv := nans32(len(q)), nans32(b*hq*sq), nans32(len(q)), nans32(len(k)), nans32(len(v))
	rp := NewParams()
	rp.Batch, rp.SeqlenQ, rp.SeqlenKV, rp.HeadsQ, rp.HeadsKV, rp.HeadDimQK, rp.HeadDimV = b, sq, skv, hq, hkv, d, d
	rp.Mask, rp.Align = MaskCausal, AlignBottomRight
	rp.Q, rp.K, rp.V = F32(q).Contiguous(sq, hq, d), F32(k).Contiguous(skv, hkv, d), F32(v).Contiguous(skv, hkv, d)
	rp.O, rp.LSE = F32(ro).Contiguous(sq, hq, d), rlse
	if err := ref.Forward(&rp); err != nil {
		t.Fatal(err)
	}
	rp.DOut = F32(dout).Contiguous(sq, hq, d)
	rp.DQ, rp.DK, rp.DV = F32(rdq).Contiguous(sq, hq, d), F32(rdk).Contiguous(skv, hkv, d), F32(rdv).Contiguous(skv, hkv, d)
	if err := ref.Backward(&rp); err != nil {
		t.Fatal(err)
	}
	want := [][]float64{f64s(ro), f64s(rlse), f64s(rdq), f64s(rdk), f64s(rdv)}
	for i, name := range []string{"o", "lse", "dq", "dk", "dv"} {
		rtol, atol := tolerance(DTypeF32, i >= 2)
		assertClose(t, "cuda "+name, got[i], want[i], rtol, atol)
	}
	t.Logf("cuda (%s): device pointers, forward + backward match the reference; last call %v", ctx.Description(), ctx.GPULatency())
}

func TestCUDABuffersAndGoSlices(t *testing.T) {
	ctx := cudaContext(t)
	const s, h, d = 33, 4, 32
	n := s * h * d
	r := newRng(301)
	q, k, v := r.vec(n), r.vec(n), r.vec(n)
	qb, kb, vb, ob := upload(t, ctx, q), upload(t, ctx, k), upload(t, ctx, v), upload(t, ctx, nans32(n))
	if _, err := ob.Float32s(); err == nil {
		t.Fatal("a device buffer was viewed from the host")
	}
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = 1, s, s, h, h, d, d
	p.Mask = MaskCausal
	p.Q, p.K = qb.Tensor(DTypeF32, 0).Contiguous(s, h, d), kb.Tensor(DTypeF32, 0).Contiguous(s, h, d)
	p.V, p.O = vb.Tensor(DTypeF32, 0).Contiguous(s, h, d), ob.Tensor(DTypeF32, 0).Contiguous(s, h, d)
	if err := ctx.Forward(&p); err != nil {
		t.Fatalf("cuda forward on buffers: %v", err)
	}
	got := download(t, ob, n)

	ref, err := NewContextWithOptions(Options{Backend: BackendReference})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	want := nans32(n)
	rp := p
	rp.Q, rp.K = F32(q).Contiguous(s, h, d), F32(k).Contiguous(s, h, d)
	rp.V, rp.O = F32(v).Contiguous(s, h, d), F32(want).Contiguous(s, h, d)
	if err := ref.Forward(&rp); err != nil {
		t.Fatal(err)
	}
	rtol, atol := tolerance(DTypeF32, false)
	assertClose(t, "cuda o (buffers)", got, f64s(want), rtol, atol)

	// past the end of a device buffer: refused by the library, no GPU fault
	p.SeqlenQ = s + 1
	if err := ctx.Forward(&p); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("want out of bounds, got %v", err)
	}
	// Go slices on a device context
	p.SeqlenQ = s
	p.Q = F32(q).Contiguous(s, h, d)
	if err := ctx.Forward(&p); !errors.Is(err, ErrInvalidArgs) || !strings.Contains(err.Error(), "Go slice") {
		t.Fatalf("want a Go-slice refusal, got %v", err)
	}
}
