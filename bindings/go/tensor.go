package mfa

import "unsafe"

// Tensor is a view the library reads or writes: memory, an element type and element strides in
// the header's index order [batch, seq, head, dim] ([batch, head, q, kv] for the dense mask).
// A view does not know its extent: the Params decide it, and the library checks every element a
// call reaches against the slice (or buffer) the view was made from. The zero Tensor is "not
// set".
type Tensor struct {
	ptr     unsafe.Pointer // Go slice memory (also keeps the slice alive)
	bytes   uintptr        // its length in bytes
	isSlice bool           // ptr/bytes describe a slice (possibly empty)
	device  uintptr        // raw address (device memory on a CUDA context); unchecked
	buffer  *Buffer        // an mfa buffer of the context, from byteOffset on
	offset  uint64

	DType   DType
	Strides [4]int64 // element strides, [batch, seq, head, dim]
}

func sliceTensor(ptr unsafe.Pointer, n int, dtype DType) Tensor {
	return Tensor{ptr: ptr, bytes: uintptr(n * dtype.Size()), isSlice: true, DType: dtype}
}

// F32 views a []float32.
func F32(s []float32) Tensor {
	if len(s) == 0 {
		return sliceTensor(nil, 0, DTypeF32)
	}
	return sliceTensor(unsafe.Pointer(&s[0]), len(s), DTypeF32)
}

// F16 views a []Float16.
func F16(s []Float16) Tensor {
	if len(s) == 0 {
		return sliceTensor(nil, 0, DTypeF16)
	}
	return sliceTensor(unsafe.Pointer(&s[0]), len(s), DTypeF16)
}

// BF16 views a []BFloat16.
func BF16(s []BFloat16) Tensor {
	if len(s) == 0 {
		return sliceTensor(nil, 0, DTypeBF16)
	}
	return sliceTensor(unsafe.Pointer(&s[0]), len(s), DTypeBF16)
}

// BoolMask views a []bool as a dense keep-mask (MFA_DTYPE_BOOL).
func BoolMask(s []bool) Tensor {
	if len(s) == 0 {
		return sliceTensor(nil, 0, DTypeBool)
	}
	return sliceTensor(unsafe.Pointer(&s[0]), len(s), DTypeBool)
}

// ByteMask views a []byte as a dense keep-mask (nonzero = keep).
func ByteMask(s []byte) Tensor {
	if len(s) == 0 {
		return sliceTensor(nil, 0, DTypeBool)
	}
	return sliceTensor(unsafe.Pointer(&s[0]), len(s), DTypeBool)
}

// DevicePtr views raw memory at addr: on a CUDA context a device pointer (or mapped host
// memory). Nothing checks it: every element the call reaches must be valid for the call (on a
// CUDA context, until the context's stream has run it).
func DevicePtr(addr uintptr, dtype DType) Tensor {
	return Tensor{device: addr, DType: dtype}
}

// Tensor views the buffer's memory as dtype elements from byteOffset on; the library checks the
// call's reach against the buffer and that it belongs to the calling context.
func (b *Buffer) Tensor(dtype DType, byteOffset uint64) Tensor {
	return Tensor{buffer: b, offset: byteOffset, DType: dtype}
}

// Contiguous sets the strides of a contiguous [batch, seq, heads, dim] tensor (BSHD).
func (t Tensor) Contiguous(seq, heads, dim int64) Tensor {
	t.Strides = StridesBSHD(seq, heads, dim)
	return t
}

// WithStrides sets element strides in [batch, seq, head, dim] order.
func (t Tensor) WithStrides(strides [4]int64) Tensor {
	t.Strides = strides
	return t
}

// StridesBSHD are the strides of a contiguous [batch, seq, heads, dim] tensor.
func StridesBSHD(seq, heads, dim int64) [4]int64 {
	return [4]int64{seq * heads * dim, heads * dim, dim, 1}
}

// StridesBHSD are the strides, in [batch, seq, head, dim] order, of a contiguous
// [batch, heads, seq, dim] tensor (the seed's layout and PyTorch's default).
func StridesBHSD(heads, seq, dim int64) [4]int64 {
	return [4]int64{heads * seq * dim, dim, seq * dim, 1}
}

func (t *Tensor) set() bool { return t.isSlice || t.device != 0 || t.buffer != nil }

// Params is everything one attention call needs, field for field as mfa_attention_params_t
// (see include/mfa.h for each one). Start from NewParams: it carries the header's defaults
// (window -1/-1 = unbounded).
type Params struct {
	Batch, SeqlenQ, SeqlenKV int64
	HeadsQ, HeadsKV          int64
	HeadDimQK, HeadDimV      int64

	Q, K, V, O Tensor // O is written by Forward and read by Backward

	// LSE: [batch, heads_q, seqlen_q] float32 (varlen: [heads_q, total_q]); written by Forward
	// when set, required by Backward. LSEDevice: the same at a raw (device) address.
	LSE       []float32
	LSEDevice uintptr

	SoftmaxScale float32 // <= 0 selects 1/sqrt(HeadDimQK)
	Softcap      float32 // > 0 caps scores at Softcap*tanh(s/Softcap)

	Mask                    Mask
	Align                   Align
	WindowLeft, WindowRight int64 // MaskWindow; -1 = unbounded

	// Block-sparse map: uint8 [batch, heads_q, rows, cols] through BlockMaskStrides, nonzero
	// keeps a BlockQ x BlockKV block. BlockMaskDevice: the same at a raw (device) address.
	BlockMask                    []byte
	BlockMaskDevice              uintptr
	BlockQ, BlockKV              int64
	BlockMaskRows, BlockMaskCols int64
	BlockMaskStrides             [4]int64

	AttnMask Tensor // dense mask: bool keeps, float is added to the scaled scores

	CuSeqlensQ, CuSeqlensKV []int32 // varlen: batch+1 offsets into the packed tokens (host memory)

	DOut, DQ, DK, DV Tensor // backward: dO in; dQ, dK, dV out
	Deterministic    bool
	AllowTF32        bool
}

// NewParams returns Params with the defaults of mfa_attention_params_init.
func NewParams() Params {
	return Params{WindowLeft: -1, WindowRight: -1}
}
