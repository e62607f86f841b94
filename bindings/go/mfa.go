package mfa

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../build -Wl,-rpath,${SRCDIR}/../../build -lmfa
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mfa.h"

// Go's cgo rules: C may not keep a Go pointer after a call returns, and Go memory passed to C
// may not contain Go pointers. So each call is one C function below: Go slices arrive as direct
// arguments, are wrapped as mfa buffers (bounds-checked by the library), used, and released
// before it returns; the params struct Go passes holds no Go pointers.

enum { MFA_GO_SLOTS = 9 }; // q, k, v, o, attn_mask, dout, dq, dk, dv
enum { MFA_GO_NONE = 0, MFA_GO_SLICE = 1, MFA_GO_DEVICE = 2 };

typedef struct mfa_go_memory {
	uint64_t bytes[MFA_GO_SLOTS];
	uintptr_t device[MFA_GO_SLOTS];
	int32_t kind[MFA_GO_SLOTS];
	uintptr_t lse_device, block_mask_device;
} mfa_go_memory_t;

// Per-context scratch in C memory, filled by Go for each call (under the context's mutex): no
// Go pointers ever go into it, and Go allocates nothing per call.
typedef struct mfa_go_scratch {
	mfa_attention_params_t params;
	mfa_go_memory_t memory;
} mfa_go_scratch_t;

static mfa_go_scratch_t *mfa_go_scratch_new(void) {
	mfa_go_scratch_t *s = calloc(1, sizeof *s);
	if (s) mfa_attention_params_init(&s->params);
	return s;
}

// Backs empty slices: a one-byte buffer holds no float element, so an empty extent passes and
// any other fails the bounds check without touching it.
static uint64_t mfa_go_empty;

static int mfa_go_call(mfa_context_t ctx, const mfa_go_scratch_t *s, int32_t direction, int check_only,
                       void *q, void *k, void *v, void *o, void *attn_mask, void *dout, void *dq, void *dk,
                       void *dv, float *lse, const uint8_t *block_mask, const int32_t *cu_q,
                       const int32_t *cu_kv) {
	mfa_attention_params_t p = s->params; // Go pointers go into this copy on the C stack only
	const mfa_go_memory_t *m = &s->memory;
	mfa_tensor_t *t[MFA_GO_SLOTS] = {&p.q, &p.k, &p.v, &p.o, &p.attn_mask, &p.dout, &p.dq, &p.dk, &p.dv};
	void *data[MFA_GO_SLOTS] = {q, k, v, o, attn_mask, dout, dq, dk, dv};
	mfa_buffer_t wrapped[MFA_GO_SLOTS] = {0};
	int err = MFA_SUCCESS;
	for (int i = 0; i < MFA_GO_SLOTS; i++) {
		if (m->kind[i] == MFA_GO_DEVICE) {
			t[i]->data = (void *)m->device[i];
		} else if (m->kind[i] == MFA_GO_SLICE) {
			void *at = m->bytes[i] ? data[i] : (void *)&mfa_go_empty;
			size_t bytes = m->bytes[i] ? (size_t)m->bytes[i] : 1;
			if ((err = mfa_buffer_from_ptr(ctx, at, bytes, &wrapped[i])) != MFA_SUCCESS) goto done;
			t[i]->data = NULL;
			t[i]->buffer = wrapped[i];
			t[i]->byte_offset = 0;
		}
	}
	p.lse = lse ? lse : (float *)m->lse_device;
	p.block_mask = block_mask ? block_mask : (const uint8_t *)m->block_mask_device;
	p.cu_seqlens_q = cu_q;
	p.cu_seqlens_kv = cu_kv;
	if (check_only) err = mfa_attention_supported(ctx, &p, direction);
	else if (direction == MFA_DIRECTION_BWD) err = mfa_attention_bwd(ctx, &p);
	else err = mfa_attention_fwd(ctx, &p);
done:
	for (int i = 0; i < MFA_GO_SLOTS; i++) mfa_destroy_buffer(wrapped[i]);
	return err;
}

// Streams as addresses on the Go side (a cudaStream_t is never a Go pointer).
static int mfa_go_set_stream(mfa_context_t ctx, uintptr_t stream) { return mfa_context_set_stream(ctx, (void *)stream); }
static uintptr_t mfa_go_get_stream(mfa_context_t ctx) { return (uintptr_t)mfa_context_get_stream(ctx); }

// Creation and its message in one call: the message of a failed creation is per OS thread, and
// a goroutine may change threads between two cgo calls.
static int mfa_go_create(mfa_context_t *ctx, int use_options, const mfa_context_options_t *options,
                         char *message, size_t size) {
	int err = use_options ? mfa_create_context_ex(ctx, options) : mfa_create_context(ctx);
	if (err) {
		strncpy(message, mfa_last_error_message(NULL), size - 1);
		message[size - 1] = 0;
	}
	return err;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Context is a library context: backend, threads, last error. Its methods may be called from
// any goroutine; calls on one context are serialised (the library allows one thread at a time
// per context). Close it when done; a finalizer closes it otherwise.
type Context struct {
	mu      sync.Mutex
	raw     C.mfa_context_t
	scratch *C.mfa_go_scratch_t  // the params of the call in progress (C memory)
	device  bool                 // the backend computes on device memory (cuda): no Go slices
	buffers map[*Buffer]struct{} // live buffers: invalidated when the context closes
}

// Options are mfa_context_options_t.
type Options struct {
	Backend    Backend
	Device     int32 // device index for GPU backends
	NumThreads int32 // cpu threads; 0 = MFA_NUM_THREADS or all online cores
}

func errorString(c Code) string { return C.GoString(C.mfa_error_string(C.mfa_error_t(c))) }

// NewContext is mfa_create_context: the default backend (MFA_BACKEND, else cpu), all cores.
func NewContext() (*Context, error) { return newContext(nil) }

// NewContextWithOptions is mfa_create_context_ex.
func NewContextWithOptions(o Options) (*Context, error) { return newContext(&o) }

func newContext(o *Options) (*Context, error) {
	var opts C.mfa_context_options_t
	C.mfa_context_options_init(&opts)
	use := C.int(0)
	if o != nil {
		use = 1
		opts.backend = C.int32_t(o.Backend)
		opts.device = C.int32_t(o.Device)
		opts.num_threads = C.int32_t(o.NumThreads)
	}
	var raw C.mfa_context_t
	var msg [512]C.char
	if code := C.mfa_go_create(&raw, use, &opts, &msg[0], C.size_t(len(msg))); code != 0 {
		return nil, &Error{Code: Code(code), Message: C.GoString(&msg[0])}
	}
	scratch := C.mfa_go_scratch_new()
	if scratch == nil {
		C.mfa_destroy_context(raw)
		return nil, &Error{Code: ErrMemoryAllocation, Message: "cannot allocate the call scratch"}
	}
	c := &Context{raw: raw, scratch: scratch, buffers: map[*Buffer]struct{}{}}
	c.device = C.GoString(C.mfa_context_backend_name(raw)) == "cuda"
	runtime.SetFinalizer(c, (*Context).Close)
	return c, nil
}

// Close destroys the context and every buffer it still owns. Closing twice is harmless; calls on
// a closed context return an error.
func (c *Context) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw != nil {
		for b := range c.buffers {
			b.raw = nil // freed with the context
		}
		c.buffers = nil
		C.mfa_destroy_context(c.raw)
		C.free(unsafe.Pointer(c.scratch))
		c.raw, c.scratch = nil, nil
	}
	runtime.SetFinalizer(c, nil)
	return nil
}

func closedError() error { return &Error{Code: ErrNullPointer, Message: "the context is closed"} }

// hostOnDevice: on a CUDA context the library reads device pointers; a Go slice would reach the
// GPU as an invalid address.
func hostOnDevice(name string) error {
	return bindingError(ErrInvalidArgs, "%s is a Go slice but the context computes on device memory: "+
		"use a buffer of the context (Buffer.Tensor) or device memory (DevicePtr)", name)
}

// fail turns a nonzero status into an *Error with the context's message (c.mu held).
func (c *Context) fail(code C.int) error {
	if code == 0 {
		return nil
	}
	return &Error{Code: Code(code), Message: C.GoString(C.mfa_last_error_message(c.raw))}
}

// BackendName is "cpu", "cuda" or "reference" ("" once closed).
func (c *Context) BackendName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return C.GoString(C.mfa_context_backend_name(c.raw))
}

// Description is one line on what the context runs on.
func (c *Context) Description() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return C.GoString(C.mfa_context_description(c.raw))
}

// NumThreads is the context's cpu thread count.
func (c *Context) NumThreads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(C.mfa_context_num_threads(c.raw))
}

// Forward writes p.O (and p.LSE when set). Nothing is written on error.
func (c *Context) Forward(p *Params) error { return c.run(p, Forward, false) }

// Backward reads Q, K, V, O, DOut and the forward's LSE; writes DQ, DK, DV.
func (c *Context) Backward(p *Params) error { return c.run(p, Backward, false) }

// Supported runs the checks of the call in direction d without computing: nil means it would be
// accepted.
func (c *Context) Supported(p *Params, d Direction) error { return c.run(p, d, true) }

func bindingError(code Code, format string, args ...interface{}) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// product of non-negative sizes, or -1 (then the library rejects the sizes itself).
func product(xs ...int64) int64 {
	n := int64(1)
	for _, x := range xs {
		if x < 0 || (x != 0 && n > (1<<62)/x) {
			return -1
		}
		n *= x
	}
	return n
}

// checkSlices checks the arrays the C struct holds as bare pointers against the lengths the
// header gives for them; everything else is the library's to judge.
func checkSlices(p *Params) error {
	varlen := p.CuSeqlensQ != nil || p.CuSeqlensKV != nil
	if p.LSE != nil {
		b := p.Batch
		if varlen {
			b = 1
		}
		if need := product(b, p.HeadsQ, p.SeqlenQ); need >= 0 && int64(len(p.LSE)) < need {
			return bindingError(ErrOutOfBounds, "LSE: the slice holds %d floats but [%d, heads_q=%d, seqlen_q=%d] needs %d",
				len(p.LSE), b, p.HeadsQ, p.SeqlenQ, need)
		}
	}
	if varlen {
		if p.CuSeqlensQ == nil || p.CuSeqlensKV == nil {
			return bindingError(ErrNullPointer, "varlen needs both CuSeqlensQ and CuSeqlensKV")
		}
		for _, cu := range []struct {
			name string
			s    []int32
		}{{"CuSeqlensQ", p.CuSeqlensQ}, {"CuSeqlensKV", p.CuSeqlensKV}} {
			if p.Batch >= 0 && int64(len(cu.s)) < p.Batch+1 {
				return bindingError(ErrOutOfBounds, "%s: the slice holds %d offsets but batch + 1 = %d are needed",
					cu.name, len(cu.s), p.Batch+1)
			}
		}
	}
	if p.BlockMask != nil {
		ext := [4]int64{p.Batch, p.HeadsQ, p.BlockMaskRows, p.BlockMaskCols}
		var lo, hi int64
		for i, e := range ext {
			if e <= 0 {
				return nil // nothing is read, or the library rejects the shape
			}
			step := p.BlockMaskStrides[i] * (e - 1)
			if e > 1 && step/(e-1) != p.BlockMaskStrides[i] {
				return nil // overflow: the library rejects it
			}
			if step < 0 {
				lo += step
			} else {
				hi += step
			}
		}
		if lo < 0 || hi >= int64(len(p.BlockMask)) {
			return bindingError(ErrOutOfBounds, "BlockMask: strides %v over [batch, heads_q, rows, cols] = %v reach elements %d..%d but the slice holds %d",
				p.BlockMaskStrides, ext, lo, hi, len(p.BlockMask))
		}
	}
	return nil
}

func boolInt(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}

func (c *Context) run(p *Params, d Direction, checkOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return closedError()
	}
	if err := checkSlices(p); err != nil {
		return err
	}
	if c.device && p.LSE != nil {
		return hostOnDevice("LSE")
	}
	if c.device && p.BlockMask != nil {
		return hostOnDevice("BlockMask")
	}
	cp, mem := &c.scratch.params, &c.scratch.memory
	cp.batch, cp.seqlen_q, cp.seqlen_kv = C.int64_t(p.Batch), C.int64_t(p.SeqlenQ), C.int64_t(p.SeqlenKV)
	cp.heads_q, cp.heads_kv = C.int64_t(p.HeadsQ), C.int64_t(p.HeadsKV)
	cp.head_dim_qk, cp.head_dim_v = C.int64_t(p.HeadDimQK), C.int64_t(p.HeadDimV)
	cp.softmax_scale, cp.softcap = C.float(p.SoftmaxScale), C.float(p.Softcap)
	cp.mask, cp.mask_align = C.int32_t(p.Mask), C.int32_t(p.Align)
	cp.window_left, cp.window_right = C.int64_t(p.WindowLeft), C.int64_t(p.WindowRight)
	cp.block_q, cp.block_kv = C.int64_t(p.BlockQ), C.int64_t(p.BlockKV)
	cp.block_mask_rows, cp.block_mask_cols = C.int64_t(p.BlockMaskRows), C.int64_t(p.BlockMaskCols)
	for i, s := range p.BlockMaskStrides {
		cp.block_mask_stride[i] = C.int64_t(s)
	}
	cp.deterministic, cp.allow_tf32 = boolInt(p.Deterministic), boolInt(p.AllowTF32)

	var data [C.MFA_GO_SLOTS]unsafe.Pointer
	slots := [C.MFA_GO_SLOTS]*Tensor{&p.Q, &p.K, &p.V, &p.O, &p.AttnMask, &p.DOut, &p.DQ, &p.DK, &p.DV}
	fields := [C.MFA_GO_SLOTS]*C.mfa_tensor_t{&cp.q, &cp.k, &cp.v, &cp.o, &cp.attn_mask, &cp.dout, &cp.dq, &cp.dk, &cp.dv}
	for i, t := range slots {
		f := fields[i]
		*f = C.mfa_tensor_t{dtype: C.int32_t(t.DType)}
		mem.kind[i] = C.MFA_GO_NONE
		if !t.set() {
			continue
		}
		for j, s := range t.Strides {
			f.stride[j] = C.int64_t(s)
		}
		switch {
		case t.isSlice:
			if c.device {
				return hostOnDevice(slotNames[i])
			}
			if t.bytes == 0 && i == 4 {
				return bindingError(ErrInvalidArgs, "AttnMask: the mask slice is empty")
			}
			mem.kind[i], mem.bytes[i] = C.MFA_GO_SLICE, C.uint64_t(t.bytes)
			data[i] = t.ptr
		case t.device != 0:
			mem.kind[i], mem.device[i] = C.MFA_GO_DEVICE, C.uintptr_t(t.device)
		default:
			if t.buffer.raw == nil {
				return bindingError(ErrInvalidArgs, "a tensor's buffer was closed")
			}
			f.buffer, f.byte_offset = t.buffer.raw, C.uint64_t(t.offset)
		}
	}
	var lse *C.float
	if len(p.LSE) > 0 {
		lse = (*C.float)(unsafe.Pointer(&p.LSE[0]))
	} else if p.LSE != nil { // an empty (not nil) slice: nothing to write, but present
		lse = (*C.float)(unsafe.Pointer(&mfaEmptyLSE))
	}
	mem.lse_device = C.uintptr_t(p.LSEDevice)
	var block *C.uint8_t
	if len(p.BlockMask) > 0 {
		block = (*C.uint8_t)(unsafe.Pointer(&p.BlockMask[0]))
	}
	mem.block_mask_device = C.uintptr_t(p.BlockMaskDevice)
	var cuQ, cuKV *C.int32_t
	if len(p.CuSeqlensQ) > 0 {
		cuQ = (*C.int32_t)(unsafe.Pointer(&p.CuSeqlensQ[0]))
	}
	if len(p.CuSeqlensKV) > 0 {
		cuKV = (*C.int32_t)(unsafe.Pointer(&p.CuSeqlensKV[0]))
	}

	check := C.int(0)
	if checkOnly {
		check = 1
	}
	code := C.mfa_go_call(c.raw, c.scratch, C.int32_t(d), check,
		data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7], data[8],
		lse, block, cuQ, cuKV)
	return c.fail(code)
}

var slotNames = [C.MFA_GO_SLOTS]string{"Q", "K", "V", "O", "AttnMask", "DOut", "DQ", "DK", "DV"}

// mfaEmptyLSE stands in for an empty LSE slice (an extent of zero rows reads nothing).
var mfaEmptyLSE float32

// Buffer is an mfa_buffer_t: memory the library allocated for a context (host memory on the cpu
// backend, device memory on a CUDA context). Go memory cannot be wrapped as a long-lived buffer
// (cgo forbids C keeping Go pointers); pass slices in Params instead, which are wrapped for the
// duration of each call.
type Buffer struct {
	raw  C.mfa_buffer_t
	ctx  *Context
	size int
}

// CreateBuffer is mfa_create_buffer: size zero-filled bytes, freed by Close (or with the
// context).
func (c *Context) CreateBuffer(size int) (*Buffer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return nil, closedError()
	}
	var raw C.mfa_buffer_t
	if err := c.fail(C.mfa_create_buffer(c.raw, C.size_t(size), &raw)); err != nil {
		return nil, err
	}
	b := &Buffer{raw: raw, ctx: c, size: size}
	c.buffers[b] = struct{}{}
	runtime.SetFinalizer(b, (*Buffer).Close)
	return b, nil
}

// Close frees the buffer. Closing twice, or after the context closed, is harmless.
func (b *Buffer) Close() error {
	c := b.ctx
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.raw != nil {
		C.mfa_destroy_buffer(b.raw)
		b.raw = nil
		delete(c.buffers, b)
	}
	runtime.SetFinalizer(b, nil)
	return nil
}

// Len is the size in bytes.
func (b *Buffer) Len() int { return b.size }

// Pointer is mfa_buffer_contents: host memory on the cpu and reference backends, a device
// pointer on a CUDA context; nil once closed.
func (b *Buffer) Pointer() unsafe.Pointer {
	b.ctx.mu.Lock()
	defer b.ctx.mu.Unlock()
	if b.raw == nil {
		return nil
	}
	return C.mfa_buffer_contents(b.raw)
}

func (b *Buffer) hostBytes() ([]byte, error) {
	if b.ctx.device {
		return nil, bindingError(ErrInvalidArgs, "buffer contents are device memory, not readable from the host")
	}
	ptr := b.Pointer()
	if ptr == nil {
		return nil, bindingError(ErrInvalidArgs, "the buffer is closed")
	}
	return unsafe.Slice((*byte)(ptr), b.size), nil
}

// Float32s views the contents (host backends only) as float32s, valid until the buffer or its
// context is closed.
func (b *Buffer) Float32s() ([]float32, error) {
	raw, err := b.hostBytes()
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), len(raw)/4), nil
}

// Uint16s views the contents (host backends only) as 16-bit elements (Float16 or BFloat16 bits).
func (b *Buffer) Uint16s() ([]uint16, error) {
	raw, err := b.hostBytes()
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), len(raw)/2), nil
}

// SeedForward holds the seed-compatible forward's arguments after the buffers.
type SeedForward struct {
	BatchSize, SeqLenQ, SeqLenKV, NumHeads uint32
	HeadDim                                uint16
	SoftmaxScale                           float32 // <= 0 selects 1/sqrt(HeadDim)
	Causal                                 bool    // top-left aligned
	InputPrecision, IntermediatePrecision  Precision
	OutputPrecision                        Precision
	TransposeQ, TransposeK                 bool
	TransposeV, TransposeO                 bool
}

// AttentionForward is the seed's 19-argument mfa_attention_forward: each operand contiguous
// [batch, num_heads, seq, head_dim] (a transpose flag stores that operand's slices as
// [head_dim, seq]), checked against its buffer's size.
func (c *Context) AttentionForward(q, k, v, out *Buffer, a SeedForward) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return closedError()
	}
	for _, b := range []*Buffer{q, k, v, out} {
		if b == nil || b.raw == nil {
			return bindingError(ErrNullPointer, "AttentionForward: a buffer is nil or closed")
		}
	}
	code := C.mfa_attention_forward(c.raw, q.raw, k.raw, v.raw, out.raw,
		C.uint32_t(a.BatchSize), C.uint32_t(a.SeqLenQ), C.uint32_t(a.SeqLenKV), C.uint32_t(a.NumHeads),
		C.uint16_t(a.HeadDim), C.float(a.SoftmaxScale), C.bool(a.Causal),
		C.int(a.InputPrecision), C.int(a.IntermediatePrecision), C.int(a.OutputPrecision),
		C.bool(a.TransposeQ), C.bool(a.TransposeK), C.bool(a.TransposeV), C.bool(a.TransposeO))
	return c.fail(code)
}

// SetStream is mfa_context_set_stream: later calls are enqueued on stream (a cudaStream_t as an
// address; 0 is the device's default stream). The stream must stay alive while work is enqueued
// on it. Stored but unused on the cpu backend.
func (c *Context) SetStream(stream uintptr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return closedError()
	}
	return c.fail(C.mfa_go_set_stream(c.raw, C.uintptr_t(stream)))
}

// Stream is the stream set by SetStream (0: the default stream).
func (c *Context) Stream() uintptr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return uintptr(C.mfa_go_get_stream(c.raw))
}

// Synchronize is mfa_synchronize: it waits for every call enqueued on the context's stream; a
// kernel that failed is reported here (ErrExecutionFailed). Immediate on the cpu backend.
func (c *Context) Synchronize() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return closedError()
	}
	return c.fail(C.mfa_synchronize(c.raw))
}

// GPULatency is mfa_get_gpu_latency: the device time of the last attention call (it waits for
// that call); 0 on the cpu backend.
func (c *Context) GPULatency() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(float64(C.mfa_get_gpu_latency(c.raw)) * 1e9)
}

// Plain are the element types buffer copies take: every bit pattern is a valid value.
type Plain interface {
	float32 | Float16 | BFloat16 | uint8 | int32
}

func bufferCopy[T Plain](b *Buffer, offset int, x []T, toHost bool) error {
	c := b.ctx
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.raw == nil {
		return bindingError(ErrInvalidArgs, "the buffer is closed")
	}
	if len(x) == 0 {
		return nil
	}
	if offset < 0 {
		return bindingError(ErrOutOfBounds, "offset=%d is negative", offset)
	}
	var zero T
	bytes := C.size_t(uintptr(len(x)) * unsafe.Sizeof(zero))
	var code C.int
	if toHost {
		code = C.mfa_buffer_copy_to_host(b.raw, C.size_t(offset), unsafe.Pointer(&x[0]), bytes)
	} else {
		code = C.mfa_buffer_copy_from_host(b.raw, C.size_t(offset), unsafe.Pointer(&x[0]), bytes)
	}
	return c.fail(code)
}

// CopyFromHost is mfa_buffer_copy_from_host: it copies src into b from byte offset on (an
// upload on a CUDA context, ordered after the enqueued work; it returns when done).
func CopyFromHost[T Plain](b *Buffer, offset int, src []T) error {
	return bufferCopy(b, offset, src, false)
}

// CopyToHost is mfa_buffer_copy_to_host: it fills dst from b's bytes at offset (a download on a
// CUDA context, after the enqueued work; it returns when done).
func CopyToHost[T Plain](b *Buffer, offset int, dst []T) error {
	return bufferCopy(b, offset, dst, true)
}

// Version is the loaded library's version.
func Version() (major, minor, patch int) {
	var a, b, c C.int
	C.mfa_get_version(&a, &b, &c)
	return int(a), int(b), int(c)
}

// IsDeviceSupported reports whether at least one backend can run here (cpu always can).
func IsDeviceSupported() bool { return bool(C.mfa_is_device_supported()) }
