package mfa

// The binding against the library's float64 reference backend (and a small native reference):
// fresh random inputs every run (MFA_SEED replays one), outputs poisoned with NaN before each
// call, forward and backward, every feature the params carry; then the error paths.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var seed = func() uint64 {
	if s := os.Getenv("MFA_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			panic("MFA_SEED must be an integer")
		}
		return v
	}
	return uint64(time.Now().UnixNano()) | 1
}()

func TestMain(m *testing.M) {
	fmt.Fprintf(os.Stderr, "MFA_SEED=%d\n", seed)
	os.Exit(m.Run())
}

type rng struct{ s uint64 }

func newRng(stream uint64) *rng { return &rng{seed ^ stream*0x9e3779b97f4a7c15} }

func (r *rng) next() uint64 { // splitmix64
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) uniform() float32 { return float32(r.next()>>40)/(1<<24)*2 - 1 }

func (r *rng) vec(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.uniform()
	}
	return v
}

// data holds elements of one dtype.
type data struct {
	dtype DType
	f32   []float32
	f16   []Float16
	bf16  []BFloat16
}

func newData(dtype DType, x []float32) *data {
	d := &data{dtype: dtype}
	switch dtype {
	case DTypeF32:
		d.f32 = append([]float32(nil), x...)
	case DTypeF16:
		for _, v := range x {
			d.f16 = append(d.f16, F16From(v))
		}
	case DTypeBF16:
		for _, v := range x {
			d.bf16 = append(d.bf16, BF16From(v))
		}
	}
	return d
}

func nanData(dtype DType, n int) *data {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return newData(dtype, x)
}

func (d *data) tensor(strides [4]int64) Tensor {
	switch d.dtype {
	case DTypeF16:
		return F16(d.f16).WithStrides(strides)
	case DTypeBF16:
		return BF16(d.bf16).WithStrides(strides)
	}
	return F32(d.f32).WithStrides(strides)
}

func (d *data) float64s() []float64 {
	var out []float64
	switch d.dtype {
	case DTypeF16:
		for _, v := range d.f16 {
			out = append(out, float64(v.Float32()))
		}
	case DTypeBF16:
		for _, v := range d.bf16 {
			out = append(out, float64(v.Float32()))
		}
	default:
		for _, v := range d.f32 {
			out = append(out, float64(v))
		}
	}
	return out
}

// tolerance is tests/check/tolerance.h's (rtol, atol in units of rms(reference)) without its
// score term, which the small random scores here keep below 1e-5.
func tolerance(dtype DType, backward bool) (float64, float64) {
	eps := map[DType]float64{DTypeF16: 1.0 / 1024, DTypeBF16: 1.0 / 128}[dtype]
	switch {
	case dtype == DTypeF32:
		return 2e-5, 2e-5
	case !backward:
		return eps, 2 * eps
	}
	return 12 * eps, 12 * eps
}

func assertClose(t *testing.T, what string, got, ref []float64, rtol, atol float64) {
	t.Helper()
	if len(got) != len(ref) {
		t.Fatalf("%s: %d elements, reference %d", what, len(got), len(ref))
	}
	var sum float64
	n := 0
	for _, r := range ref {
		if !math.IsInf(r, 0) && !math.IsNaN(r) {
			sum += r * r
			n++
		}
	}
	rms := math.Sqrt(sum / math.Max(float64(n), 1))
	if rms == 0 { // an all-zero reference: take the inputs' scale (see the Rust helper)
		rms = 1
	}
	bad := 0
	for i := range got {
		x, r := got[i], ref[i]
		ok := x == r && math.IsInf(r, 0) || math.Abs(x-r) <= atol*rms+rtol*math.Abs(r)
		if !ok {
			if bad < 5 {
				t.Errorf("%s: [%d] got %g, reference %g (seed %d)", what, i, x, r, seed)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d elements out of tolerance", what, bad, len(got))
	}
}

type attCase struct {
	name                             string
	batch, sq, skv, hq, hkv, dqk, dv int64
	in, out                          DType
	bhsd                             bool
	mask                             Mask
	align                            Align
	left, right                      int64
	softcap                          float32
	denseBool, biasF32               bool
	block                            int64 // block size (square), 0 = none
	varlen                           [][2]int32
}

func (c *attCase) tb() int64 {
	if c.varlen != nil {
		return 1
	}
	return c.batch
}

func (c *attCase) strides(seq, heads, dim int64) [4]int64 {
	if c.bhsd {
		return StridesBHSD(heads, seq, dim)
	}
	return StridesBSHD(seq, heads, dim)
}

func (c *attCase) count(seq, heads, dim int64) int { return int(c.tb() * seq * heads * dim) }

func (c *attCase) longest() (int64, int64) {
	if c.varlen == nil {
		return c.sq, c.skv
	}
	var a, b int64
	for _, l := range c.varlen {
		if int64(l[0]) > a {
			a = int64(l[0])
		}
		if int64(l[1]) > b {
			b = int64(l[1])
		}
	}
	return a, b
}

type inputs struct {
	q, k, v, dout *data
	dense         []bool
	bias          []float32
	blocks        []byte
	cuQ, cuKV     []int32
}

func makeInputs(c *attCase, stream uint64) *inputs {
	r := newRng(stream)
	mq, mkv := c.longest()
	x := &inputs{
		q:    newData(c.in, r.vec(c.count(c.sq, c.hq, c.dqk))),
		k:    newData(c.in, r.vec(c.count(c.skv, c.hkv, c.dqk))),
		v:    newData(c.in, r.vec(c.count(c.skv, c.hkv, c.dv))),
		dout: newData(c.out, r.vec(c.count(c.sq, c.hq, c.dv))),
		bias: r.vec(int(c.batch * c.hq * mq * mkv)),
	}
	for i := int64(0); i < c.batch*mq*mkv; i++ {
		x.dense = append(x.dense, r.uniform() < 0.6)
	}
	if c.block > 0 {
		n := c.batch * c.hq * ((mq + c.block - 1) / c.block) * ((mkv + c.block - 1) / c.block)
		for i := int64(0); i < n; i++ {
			x.blocks = append(x.blocks, map[bool]byte{true: 1}[r.uniform() < 0.4])
		}
	}
	if c.varlen != nil {
		x.cuQ, x.cuKV = []int32{0}, []int32{0}
		for _, l := range c.varlen {
			x.cuQ = append(x.cuQ, x.cuQ[len(x.cuQ)-1]+l[0])
			x.cuKV = append(x.cuKV, x.cuKV[len(x.cuKV)-1]+l[1])
		}
	}
	return x
}

func (c *attCase) params(x *inputs) Params {
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV = c.batch, c.sq, c.skv
	p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = c.hq, c.hkv, c.dqk, c.dv
	p.Q = x.q.tensor(c.strides(c.sq, c.hq, c.dqk))
	p.K = x.k.tensor(c.strides(c.skv, c.hkv, c.dqk))
	p.V = x.v.tensor(c.strides(c.skv, c.hkv, c.dv))
	p.Mask, p.Align, p.Softcap = c.mask, c.align, c.softcap
	if c.mask == MaskWindow {
		p.WindowLeft, p.WindowRight = c.left, c.right
	}
	mq, mkv := c.longest()
	if c.denseBool {
		p.AttnMask = BoolMask(x.dense).WithStrides([4]int64{mq * mkv, 0, mkv, 1})
	}
	if c.biasF32 {
		p.AttnMask = F32(x.bias).WithStrides([4]int64{c.hq * mq * mkv, mq * mkv, mkv, 1})
	}
	if c.block > 0 {
		rows, cols := (mq+c.block-1)/c.block, (mkv+c.block-1)/c.block
		p.BlockMask, p.BlockQ, p.BlockKV = x.blocks, c.block, c.block
		p.BlockMaskRows, p.BlockMaskCols = rows, cols
		p.BlockMaskStrides = [4]int64{c.hq * rows * cols, rows * cols, cols, 1}
	}
	p.CuSeqlensQ, p.CuSeqlensKV = x.cuQ, x.cuKV
	return p
}

type outputs struct{ o, lse, dq, dk, dv []float64 }

func run(t *testing.T, ctx *Context, c *attCase, x *inputs) outputs {
	t.Helper()
	oStride := c.strides(c.sq, c.hq, c.dv)
	o := nanData(c.out, c.count(c.sq, c.hq, c.dv))
	lse := make([]float32, c.tb()*c.hq*c.sq)
	for i := range lse {
		lse[i] = float32(math.NaN())
	}
	p := c.params(x)
	p.O, p.LSE = o.tensor(oStride), lse
	if err := ctx.Forward(&p); err != nil {
		t.Fatalf("%s forward on %s: %v", c.name, ctx.BackendName(), err)
	}
	dq := nanData(c.out, c.count(c.sq, c.hq, c.dqk))
	dk := nanData(c.out, c.count(c.skv, c.hkv, c.dqk))
	dv := nanData(c.out, c.count(c.skv, c.hkv, c.dv))
	p.DOut = x.dout.tensor(oStride)
	p.DQ = dq.tensor(c.strides(c.sq, c.hq, c.dqk))
	p.DK = dk.tensor(c.strides(c.skv, c.hkv, c.dqk))
	p.DV = dv.tensor(c.strides(c.skv, c.hkv, c.dv))
	if err := ctx.Backward(&p); err != nil {
		t.Fatalf("%s backward on %s: %v", c.name, ctx.BackendName(), err)
	}
	var out outputs
	out.o, out.dq, out.dk, out.dv = o.float64s(), dq.float64s(), dk.float64s(), dv.float64s()
	for _, v := range lse {
		out.lse = append(out.lse, float64(v))
	}
	return out
}

func contexts(t *testing.T) (*Context, *Context) {
	cpu, err := NewContextWithOptions(Options{Backend: BackendCPU, NumThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewContextWithOptions(Options{Backend: BackendReference})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close(); ref.Close() })
	return cpu, ref
}

func TestForwardBackwardMatchReferenceBackend(t *testing.T) {
	cases := []attCase{
		{name: "gqa causal bottom-right, dv != dqk", batch: 2, sq: 37, skv: 53, hq: 6, hkv: 2, dqk: 40, dv: 24,
			in: DTypeF32, out: DTypeF32, mask: MaskCausal, align: AlignBottomRight},
		{name: "bhsd, sliding window", batch: 1, sq: 64, skv: 64, hq: 4, hkv: 4, dqk: 32, dv: 32,
			in: DTypeF32, out: DTypeF32, bhsd: true, mask: MaskWindow, left: 8, right: 0},
		{name: "f16 in, bf16 out, softcap", batch: 2, sq: 33, skv: 41, hq: 2, hkv: 1, dqk: 64, dv: 64,
			in: DTypeF16, out: DTypeBF16, softcap: 20},
		{name: "bf16, dense bool broadcast over heads, block-sparse, causal", batch: 2, sq: 50, skv: 70, hq: 4, hkv: 2,
			dqk: 32, dv: 32, in: DTypeBF16, out: DTypeBF16, denseBool: true, block: 16, mask: MaskCausal},
		{name: "additive f32 bias, f16 out", batch: 1, sq: 20, skv: 30, hq: 2, hkv: 2, dqk: 16, dv: 16,
			in: DTypeF32, out: DTypeF16, biasF32: true},
		{name: "varlen, causal bottom-right", batch: 4, sq: 31, skv: 39, hq: 4, hkv: 2, dqk: 32, dv: 32,
			in: DTypeF32, out: DTypeF32, mask: MaskCausal, align: AlignBottomRight,
			varlen: [][2]int32{{5, 7}, {17, 17}, {0, 3}, {9, 12}}},
	}
	cpu, ref := contexts(t)
	for i := range cases {
		c := &cases[i]
		x := makeInputs(c, uint64(i))
		got, want := run(t, cpu, c, x), run(t, ref, c, x)
		rtol, atol := tolerance(c.out, false)
		assertClose(t, c.name+": o", got.o, want.o, rtol, atol)
		rtol, atol = tolerance(DTypeF32, false)
		assertClose(t, c.name+": lse", got.lse, want.lse, rtol, atol)
		rtol, atol = tolerance(c.out, true)
		assertClose(t, c.name+": dq", got.dq, want.dq, rtol, atol)
		assertClose(t, c.name+": dk", got.dk, want.dk, rtol, atol)
		assertClose(t, c.name+": dv", got.dv, want.dv, rtol, atol)
		t.Logf("ok: %s", c.name)
	}
}

// nativeReference: float64 causal (top-left) attention, BSHD f32, GQA.
func nativeReference(q, k, v []float32, b, sq, skv, hq, hkv, d int) []float64 {
	o := make([]float64, b*sq*hq*d)
	for bb := 0; bb < b; bb++ {
		for h := 0; h < hq; h++ {
			kh := h / (hq / hkv)
			for i := 0; i < sq; i++ {
				w := make([]float64, skv)
				mx := math.Inf(-1)
				for j := 0; j <= i && j < skv; j++ {
					var s float64
					for dd := 0; dd < d; dd++ {
						s += float64(q[((bb*sq+i)*hq+h)*d+dd]) * float64(k[((bb*skv+j)*hkv+kh)*d+dd])
					}
					w[j] = s / math.Sqrt(float64(d))
					mx = math.Max(mx, w[j])
				}
				var sum float64
				for j := 0; j <= i && j < skv; j++ {
					w[j] = math.Exp(w[j] - mx)
					sum += w[j]
				}
				for dd := 0; dd < d; dd++ {
					var acc float64
					for j := 0; j <= i && j < skv; j++ {
						acc += w[j] * float64(v[((bb*skv+j)*hkv+kh)*d+dd])
					}
					o[((bb*sq+i)*hq+h)*d+dd] = acc / sum
				}
			}
		}
	}
	return o
}

func TestForwardMatchesNativeReference(t *testing.T) {
	c := attCase{name: "native", batch: 2, sq: 19, skv: 29, hq: 4, hkv: 2, dqk: 24, dv: 24, in: DTypeF32, out: DTypeF32, mask: MaskCausal}
	x := makeInputs(&c, 100)
	want := nativeReference(x.q.f32, x.k.f32, x.v.f32, 2, 19, 29, 4, 2, 24)
	cpu, ref := contexts(t)
	for _, ctx := range []*Context{cpu, ref} {
		got := run(t, ctx, &c, x)
		rtol, atol := tolerance(DTypeF32, false)
		assertClose(t, "causal vs native on "+ctx.BackendName(), got.o, want, rtol, atol)
	}
}

func TestSeedAPI(t *testing.T) {
	ctx, err := NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	const b, h, s, d = 1, 2, 24, 16 // BHSD, causal; with b=1 and one layout, BHSD per head
	n := b * h * s * d
	bufs := make([]*Buffer, 4)
	for i := range bufs {
		if bufs[i], err = ctx.CreateBuffer(n * 4); err != nil {
			t.Fatal(err)
		}
	}
	r := newRng(200)
	host := make([][]float32, 4)
	for i := range bufs {
		if host[i], err = bufs[i].Float32s(); err != nil {
			t.Fatal(err)
		}
	}
	copy(host[0], r.vec(n))
	copy(host[1], r.vec(n))
	copy(host[2], r.vec(n))
	for i := range host[3] {
		host[3][i] = float32(math.NaN())
	}
	err = ctx.AttentionForward(bufs[0], bufs[1], bufs[2], bufs[3], SeedForward{BatchSize: b, SeqLenQ: s, SeqLenKV: s,
		NumHeads: h, HeadDim: d, Causal: true, InputPrecision: PrecisionFP32, IntermediatePrecision: PrecisionFP32,
		OutputPrecision: PrecisionFP32})
	if err != nil {
		t.Fatal(err)
	}
	// the same through the full API with BHSD strides on the reference backend
	_, ref := contexts(t)
	want := make([]float32, n)
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = b, s, s, h, h, d, d
	st := StridesBHSD(h, s, d)
	p.Q, p.K, p.V, p.O = F32(host[0]).WithStrides(st), F32(host[1]).WithStrides(st), F32(host[2]).WithStrides(st), F32(want).WithStrides(st)
	p.Mask = MaskCausal
	if err := ref.Forward(&p); err != nil {
		t.Fatal(err)
	}
	got, ref64 := make([]float64, n), make([]float64, n)
	for i := range got {
		got[i], ref64[i] = float64(host[3][i]), float64(want[i])
	}
	rtol, atol := tolerance(DTypeF32, false)
	assertClose(t, "seed forward", got, ref64, rtol, atol)
	bufs[0].Close()
	bufs[0].Close() // twice is harmless
	if err := ctx.AttentionForward(bufs[0], bufs[1], bufs[2], bufs[3], SeedForward{}); !errors.Is(err, ErrNullPointer) {
		t.Fatalf("closed buffer: %v", err)
	}
}

func tinyParams(q, k, v, o []float32, s, h, d int64) Params {
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = 1, s, s, h, h, d, d
	p.Q, p.K, p.V, p.O = F32(q).Contiguous(s, h, d), F32(k).Contiguous(s, h, d), F32(v).Contiguous(s, h, d), F32(o).Contiguous(s, h, d)
	return p
}

func wantError(t *testing.T, err error, code Code, message string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *mfa.Error with %v, got %v", code, err)
	}
	if !errors.Is(err, code) || !strings.HasPrefix(e.Message, message) {
		t.Fatalf("want %v %q..., got %v %q", code, message, e.Code, e.Message)
	}
	return e
}

func TestErrors(t *testing.T) {
	ctx, err := NewContextWithOptions(Options{Backend: BackendCPU, NumThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	q, kv, o := make([]float32, 4*12*8), make([]float32, 4*5*8), make([]float32, 4*12*8)
	for i := range o {
		o[i] = float32(math.NaN())
	}
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = 1, 4, 4, 12, 5, 8, 8
	p.Q, p.K, p.V, p.O = F32(q).Contiguous(4, 12, 8), F32(kv).Contiguous(4, 5, 8), F32(kv).Contiguous(4, 5, 8), F32(o).Contiguous(4, 12, 8)
	e := wantError(t, ctx.Forward(&p), ErrInvalidArgs, "heads_q=12 is not a multiple of heads_kv=5")
	if e.Error() != "invalid argument: heads_q=12 is not a multiple of heads_kv=5" {
		t.Fatalf("Error() = %q", e.Error())
	}
	wantError(t, ctx.Supported(&p, Forward), ErrInvalidArgs, "heads_q=12")
	for _, x := range o {
		if !math.IsNaN(float64(x)) {
			t.Fatal("written on error")
		}
	}

	a := make([]float32, 32)
	short := make([]float32, 31)
	p = tinyParams(short, a, a, a, 4, 1, 8)
	wantError(t, ctx.Forward(&p), ErrOutOfBounds, "q: reaches bytes [0, 128) from byte_offset=0 but its buffer holds 124 bytes")
	p = tinyParams(a, a, a, a, 4, 1, 8)
	p.LSE = make([]float32, 3)
	wantError(t, ctx.Forward(&p), ErrOutOfBounds, "LSE: the slice holds 3 floats")
	p = tinyParams(a, a, a, a, 4, 1, 8)
	p.Batch, p.CuSeqlensQ, p.CuSeqlensKV = 2, []int32{0, 4}, []int32{0, 4}
	wantError(t, ctx.Forward(&p), ErrOutOfBounds, "CuSeqlensQ: the slice holds 2 offsets")
	p = tinyParams(a, a, a, a, 4, 1, 8)
	p.BlockMask, p.BlockQ, p.BlockKV, p.BlockMaskRows, p.BlockMaskCols = make([]byte, 3), 2, 2, 2, 2
	p.BlockMaskStrides = [4]int64{4, 4, 2, 1}
	wantError(t, ctx.Forward(&p), ErrOutOfBounds, "BlockMask:")
	p = tinyParams(a, a, a, a, 4, 1, 8)
	p.Q = Tensor{}
	wantError(t, ctx.Forward(&p), ErrNullPointer, "q.data is NULL")
	p = tinyParams(a, a, a, a, 4, 1, 8)
	wantError(t, ctx.Backward(&p), ErrNullPointer, "lse is NULL")
	empty := NewParams()
	wantError(t, ctx.Forward(&empty), ErrInvalidArgs, "batch=0 must be at least 1")

	_, err = NewContextWithOptions(Options{NumThreads: -1})
	wantError(t, err, ErrInvalidArgs, "options->num_threads=-1 is negative")
	if cuda, err := NewContextWithOptions(Options{Backend: BackendCUDA}); err == nil {
		cuda.Close()
	} else {
		wantError(t, err, ErrDeviceNotSupported, "")
		t.Logf("cuda context: %v", err)
	}

	// buffers belong to their context
	other, _ := NewContextWithOptions(Options{Backend: BackendCPU, NumThreads: 1})
	buf, err := other.CreateBuffer(128)
	if err != nil {
		t.Fatal(err)
	}
	p = tinyParams(a, a, a, a, 4, 1, 8)
	p.Q = buf.Tensor(DTypeF32, 0).Contiguous(4, 1, 8)
	wantError(t, ctx.Forward(&p), ErrWrongContext, "q.buffer=")
	if err := other.Forward(&p); err != nil {
		t.Fatal(err)
	}
	other.Close()
	wantError(t, other.Forward(&p), ErrNullPointer, "the context is closed")
	buf.Close() // after its context: harmless
	wantError(t, ctx.Forward(&p), ErrInvalidArgs, "a tensor's buffer was closed")
}

func TestBufferCopiesAndStreamsOnCPU(t *testing.T) {
	ctx, err := NewContextWithOptions(Options{Backend: BackendCPU, NumThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	b, err := ctx.CreateBuffer(16)
	if err != nil {
		t.Fatal(err)
	}
	if err := CopyFromHost(b, 4, []float32{1.5, 2.5}); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, 4)
	if err := CopyToHost(b, 0, back); err != nil || back[0] != 0 || back[1] != 1.5 || back[2] != 2.5 || back[3] != 0 {
		t.Fatalf("copies: %v %v", back, err)
	}
	wantError(t, CopyFromHost(b, 12, []float32{1, 2}), ErrOutOfBounds,
		"mfa_buffer_copy_from_host: bytes [12, 12 + 8) exceed the buffer's 16 bytes")
	if err := ctx.SetStream(0); err != nil || ctx.Stream() != 0 || ctx.Synchronize() != nil || ctx.GPULatency() != 0 {
		t.Fatalf("stream calls on the cpu: %v", err)
	}
}

func TestFinalizerClosesContexts(t *testing.T) {
	for i := 0; i < 100; i++ {
		ctx, err := NewContextWithOptions(Options{Backend: BackendCPU, NumThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ctx.CreateBuffer(1 << 16); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
}

func TestHalfConversions(t *testing.T) {
	for bits := 0; bits < 1<<16; bits++ {
		h := Float16(bits)
		if x := h.Float32(); x == x && F16From(x) != h {
			t.Fatalf("f16 %#04x does not round-trip", bits)
		}
		b := BFloat16(bits)
		if x := b.Float32(); x == x && BF16From(x) != b {
			t.Fatalf("bf16 %#04x does not round-trip", bits)
		}
	}
	if F16From(1+1.0/2048) != 0x3c00 || F16From(1+3.0/2048) != 0x3c02 || F16From(65520) != 0x7c00 {
		t.Fatal("f16 rounding")
	}
}

func TestLayoutMatchesHeader(t *testing.T) {
	rows, n := layout()
	if n != len(rows) {
		t.Fatalf("C table has %d rows, Go %d", n, len(rows))
	}
	for _, r := range rows {
		if r.goVal != r.cVal {
			t.Errorf("%s: Go %d, C %d", r.name, r.goVal, r.cVal)
		}
	}
	if v := IsDeviceSupported(); !v {
		t.Fatal("no backend")
	}
	if a, b, c := Version(); a != 0 || b != 1 || c < 0 {
		t.Fatalf("version %d.%d.%d", a, b, c)
	}
}
