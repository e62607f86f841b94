package mfa

import (
	"fmt"
	"math"
)

// DType is an element type (MFA_DTYPE_*); the seed's precision values are the same numbers.
type DType int32

const (
	DTypeF16  DType = 0
	DTypeBF16 DType = 1
	DTypeF32  DType = 2
	DTypeBool DType = 3 // one byte per element, nonzero = keep; dense masks only
)

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case DTypeF16, DTypeBF16:
		return 2
	case DTypeF32:
		return 4
	}
	return 1
}

// Precision is the seed forward's precision argument (MFA_PRECISION_*).
type Precision int32

const (
	PrecisionFP16 Precision = 0
	PrecisionBF16 Precision = 1
	PrecisionFP32 Precision = 2
)

// Backend selects what a context runs on (MFA_BACKEND_*).
type Backend int32

const (
	BackendAuto      Backend = 0 // MFA_BACKEND environment variable, else cpu
	BackendCPU       Backend = 1
	BackendCUDA      Backend = 2 // the libmfa_cuda plugin; ErrDeviceNotSupported where absent
	BackendReference Backend = 3 // float64 naive attention: the oracle for tests (slow)
)

// Mask is the causal/window mask kind (MFA_MASK_*).
type Mask int32

const (
	MaskNone   Mask = 0
	MaskCausal Mask = 1
	MaskWindow Mask = 2
)

// Align places the diagonal of causal and window masks (MFA_ALIGN_*): d = 0 for AlignTopLeft
// (PyTorch's is_causal), d = seqlen_kv - seqlen_q for AlignBottomRight (FlashAttention's).
type Align int32

const (
	AlignTopLeft     Align = 0
	AlignBottomRight Align = 1
)

// Direction selects the call Supported checks (MFA_DIRECTION_*).
type Direction int32

const (
	Forward  Direction = 0
	Backward Direction = 1
)

// Code is a status code of mfa.h. A Code is also an error value, so that
// errors.Is(err, mfa.ErrOutOfBounds) matches any *Error with that code.
type Code int32

const (
	ErrInvalidArgs        Code = 1
	ErrMemoryAllocation   Code = 2
	ErrDeviceNotSupported Code = 3
	ErrKernelCompilation  Code = 4
	ErrExecutionFailed    Code = 5
	ErrNullPointer        Code = 6
	ErrUnsupported        Code = 7
	ErrOutOfBounds        Code = 8
	ErrWrongContext       Code = 9
)

// Error returns the library's text for the code (mfa_error_string): "invalid argument", ...
func (c Code) Error() string { return errorString(c) }

// Error is a failed call: the code and the message naming the argument and its value, as the
// library wrote it (mfa_last_error_message), e.g. "heads_q=12 is not a multiple of heads_kv=5".
// Checks the binding makes itself (slice lengths of lse, block_mask, cu_seqlens) give the same
// kind of value.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code.Error(), e.Message) }

// Is reports whether target is e's Code.
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == e.Code
}

// Float16 is an IEEE 754 binary16 value, stored as its bits.
type Float16 uint16

// BFloat16 is a bfloat16 value (the upper half of a float32), stored as its bits.
type BFloat16 uint16

// F16From rounds x to the nearest binary16 (ties to even); overflow gives infinity.
func F16From(x float32) Float16 {
	bits := math.Float32bits(x)
	sign := uint16(bits>>16) & 0x8000
	exp := int32(bits>>23) & 0xff
	man := bits & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return Float16(sign | 0x7e00 | uint16(man>>13))
		}
		return Float16(sign | 0x7c00)
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return Float16(sign | 0x7c00)
	}
	var r, rem, half uint32
	if e <= 0 {
		if e < -10 {
			return Float16(sign)
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		r, rem, half = m>>shift, m&(1<<shift-1), 1<<(shift-1)
	} else {
		r, rem, half = uint32(e)<<10|man>>13, man&0x1fff, 0x1000
	}
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	return Float16(sign | uint16(r))
}

// Float32 is the exact value.
func (h Float16) Float32() float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch exp {
	case 0:
		return math.Float32frombits(sign | math.Float32bits(float32(man)/(1<<24)))
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// BF16From rounds x to the nearest bfloat16 (ties to even); NaN stays NaN.
func BF16From(x float32) BFloat16 {
	bits := math.Float32bits(x)
	if x != x {
		return BFloat16(bits>>16 | 0x40)
	}
	return BFloat16((bits + 0x7fff + (bits>>16)&1) >> 16)
}

// Float32 is the exact value.
func (b BFloat16) Float32() float32 { return math.Float32frombits(uint32(b) << 16) }
