package mfa

/*
#include <stddef.h>
#include "mfa.h"

// What the C compiler says about the header: sizes, offsets and constants, in the order of
// layoutNames below (layout_test.go compares them with what cgo and this package use).
static const long long mfa_go_layout[] = {
	sizeof(mfa_context_options_t),
	offsetof(mfa_context_options_t, struct_size), offsetof(mfa_context_options_t, backend),
	offsetof(mfa_context_options_t, device), offsetof(mfa_context_options_t, num_threads),
	sizeof(mfa_tensor_t),
	offsetof(mfa_tensor_t, data), offsetof(mfa_tensor_t, buffer), offsetof(mfa_tensor_t, byte_offset),
	offsetof(mfa_tensor_t, dtype), offsetof(mfa_tensor_t, reserved_), offsetof(mfa_tensor_t, stride),
	sizeof(mfa_attention_params_t),
	offsetof(mfa_attention_params_t, struct_size), offsetof(mfa_attention_params_t, reserved_),
	offsetof(mfa_attention_params_t, batch), offsetof(mfa_attention_params_t, seqlen_q),
	offsetof(mfa_attention_params_t, seqlen_kv), offsetof(mfa_attention_params_t, heads_q),
	offsetof(mfa_attention_params_t, heads_kv), offsetof(mfa_attention_params_t, head_dim_qk),
	offsetof(mfa_attention_params_t, head_dim_v), offsetof(mfa_attention_params_t, q),
	offsetof(mfa_attention_params_t, k), offsetof(mfa_attention_params_t, v),
	offsetof(mfa_attention_params_t, o), offsetof(mfa_attention_params_t, lse),
	offsetof(mfa_attention_params_t, softmax_scale), offsetof(mfa_attention_params_t, softcap),
	offsetof(mfa_attention_params_t, mask), offsetof(mfa_attention_params_t, mask_align),
	offsetof(mfa_attention_params_t, window_left), offsetof(mfa_attention_params_t, window_right),
	offsetof(mfa_attention_params_t, block_mask), offsetof(mfa_attention_params_t, block_q),
	offsetof(mfa_attention_params_t, block_kv), offsetof(mfa_attention_params_t, block_mask_rows),
	offsetof(mfa_attention_params_t, block_mask_cols), offsetof(mfa_attention_params_t, block_mask_stride),
	offsetof(mfa_attention_params_t, attn_mask), offsetof(mfa_attention_params_t, cu_seqlens_q),
	offsetof(mfa_attention_params_t, cu_seqlens_kv), offsetof(mfa_attention_params_t, dout),
	offsetof(mfa_attention_params_t, dq), offsetof(mfa_attention_params_t, dk),
	offsetof(mfa_attention_params_t, dv), offsetof(mfa_attention_params_t, deterministic),
	offsetof(mfa_attention_params_t, allow_tf32),
	MFA_DTYPE_F16, MFA_DTYPE_BF16, MFA_DTYPE_F32, MFA_DTYPE_BOOL,
	MFA_PRECISION_FP16, MFA_PRECISION_BF16, MFA_PRECISION_FP32,
	MFA_BACKEND_AUTO, MFA_BACKEND_CPU, MFA_BACKEND_CUDA, MFA_BACKEND_REFERENCE,
	MFA_MASK_NONE, MFA_MASK_CAUSAL, MFA_MASK_WINDOW, MFA_ALIGN_TOP_LEFT, MFA_ALIGN_BOTTOM_RIGHT,
	MFA_DIRECTION_FWD, MFA_DIRECTION_BWD,
	MFA_ERROR_INVALID_ARGS, MFA_ERROR_MEMORY_ALLOCATION, MFA_ERROR_DEVICE_NOT_SUPPORTED,
	MFA_ERROR_KERNEL_COMPILATION, MFA_ERROR_EXECUTION_FAILED, MFA_ERROR_NULL_POINTER,
	MFA_ERROR_UNSUPPORTED, MFA_ERROR_OUT_OF_BOUNDS, MFA_ERROR_WRONG_CONTEXT,
};
static long long mfa_go_layout_at(int i) { return mfa_go_layout[i]; }
static int mfa_go_layout_count(void) { return (int)(sizeof mfa_go_layout / sizeof mfa_go_layout[0]); }
*/
import "C"

import "unsafe"

// layoutRow is one size, offset or constant: its name, what cgo and this package use, and what
// the C compiler computed from mfa.h.
type layoutRow struct {
	name  string
	goVal int64
	cVal  int64
}

// layout pairs cgo's view of the structs (unsafe.Sizeof/Offsetof on the C types this package
// fills) and this package's constants with the C compiler's values.
func layout() ([]layoutRow, int) {
	var o C.mfa_context_options_t
	var t C.mfa_tensor_t
	var p C.mfa_attention_params_t
	rows := []layoutRow{
		{"sizeof(mfa_context_options_t)", int64(unsafe.Sizeof(o)), 0},
		{"options.struct_size", int64(unsafe.Offsetof(o.struct_size)), 0},
		{"options.backend", int64(unsafe.Offsetof(o.backend)), 0},
		{"options.device", int64(unsafe.Offsetof(o.device)), 0},
		{"options.num_threads", int64(unsafe.Offsetof(o.num_threads)), 0},
		{"sizeof(mfa_tensor_t)", int64(unsafe.Sizeof(t)), 0},
		{"tensor.data", int64(unsafe.Offsetof(t.data)), 0},
		{"tensor.buffer", int64(unsafe.Offsetof(t.buffer)), 0},
		{"tensor.byte_offset", int64(unsafe.Offsetof(t.byte_offset)), 0},
		{"tensor.dtype", int64(unsafe.Offsetof(t.dtype)), 0},
		{"tensor.reserved_", int64(unsafe.Offsetof(t.reserved_)), 0},
		{"tensor.stride", int64(unsafe.Offsetof(t.stride)), 0},
		{"sizeof(mfa_attention_params_t)", int64(unsafe.Sizeof(p)), 0},
		{"params.struct_size", int64(unsafe.Offsetof(p.struct_size)), 0},
		{"params.reserved_", int64(unsafe.Offsetof(p.reserved_)), 0},
		{"params.batch", int64(unsafe.Offsetof(p.batch)), 0},
		{"params.seqlen_q", int64(unsafe.Offsetof(p.seqlen_q)), 0},
		{"params.seqlen_kv", int64(unsafe.Offsetof(p.seqlen_kv)), 0},
		{"params.heads_q", int64(unsafe.Offsetof(p.heads_q)), 0},
		{"params.heads_kv", int64(unsafe.Offsetof(p.heads_kv)), 0},
		{"params.head_dim_qk", int64(unsafe.Offsetof(p.head_dim_qk)), 0},
		{"params.head_dim_v", int64(unsafe.Offsetof(p.head_dim_v)), 0},
		{"params.q", int64(unsafe.Offsetof(p.q)), 0},
		{"params.k", int64(unsafe.Offsetof(p.k)), 0},
		{"params.v", int64(unsafe.Offsetof(p.v)), 0},
		{"params.o", int64(unsafe.Offsetof(p.o)), 0},
		{"params.lse", int64(unsafe.Offsetof(p.lse)), 0},
		{"params.softmax_scale", int64(unsafe.Offsetof(p.softmax_scale)), 0},
		{"params.softcap", int64(unsafe.Offsetof(p.softcap)), 0},
		{"params.mask", int64(unsafe.Offsetof(p.mask)), 0},
		{"params.mask_align", int64(unsafe.Offsetof(p.mask_align)), 0},
		{"params.window_left", int64(unsafe.Offsetof(p.window_left)), 0},
		{"params.window_right", int64(unsafe.Offsetof(p.window_right)), 0},
		{"params.block_mask", int64(unsafe.Offsetof(p.block_mask)), 0},
		{"params.block_q", int64(unsafe.Offsetof(p.block_q)), 0},
		{"params.block_kv", int64(unsafe.Offsetof(p.block_kv)), 0},
		{"params.block_mask_rows", int64(unsafe.Offsetof(p.block_mask_rows)), 0},
		{"params.block_mask_cols", int64(unsafe.Offsetof(p.block_mask_cols)), 0},
		{"params.block_mask_stride", int64(unsafe.Offsetof(p.block_mask_stride)), 0},
		{"params.attn_mask", int64(unsafe.Offsetof(p.attn_mask)), 0},
		{"params.cu_seqlens_q", int64(unsafe.Offsetof(p.cu_seqlens_q)), 0},
		{"params.cu_seqlens_kv", int64(unsafe.Offsetof(p.cu_seqlens_kv)), 0},
		{"params.dout", int64(unsafe.Offsetof(p.dout)), 0},
		{"params.dq", int64(unsafe.Offsetof(p.dq)), 0},
		{"params.dk", int64(unsafe.Offsetof(p.dk)), 0},
		{"params.dv", int64(unsafe.Offsetof(p.dv)), 0},
		{"params.deterministic", int64(unsafe.Offsetof(p.deterministic)), 0},
		{"params.allow_tf32", int64(unsafe.Offsetof(p.allow_tf32)), 0},
		{"DTypeF16", int64(DTypeF16), 0},
		{"DTypeBF16", int64(DTypeBF16), 0},
		{"DTypeF32", int64(DTypeF32), 0},
		{"DTypeBool", int64(DTypeBool), 0},
		{"PrecisionFP16", int64(PrecisionFP16), 0},
		{"PrecisionBF16", int64(PrecisionBF16), 0},
		{"PrecisionFP32", int64(PrecisionFP32), 0},
		{"BackendAuto", int64(BackendAuto), 0},
		{"BackendCPU", int64(BackendCPU), 0},
		{"BackendCUDA", int64(BackendCUDA), 0},
		{"BackendReference", int64(BackendReference), 0},
		{"MaskNone", int64(MaskNone), 0},
		{"MaskCausal", int64(MaskCausal), 0},
		{"MaskWindow", int64(MaskWindow), 0},
		{"AlignTopLeft", int64(AlignTopLeft), 0},
		{"AlignBottomRight", int64(AlignBottomRight), 0},
		{"Forward", int64(Forward), 0},
		{"Backward", int64(Backward), 0},
		{"ErrInvalidArgs", int64(ErrInvalidArgs), 0},
		{"ErrMemoryAllocation", int64(ErrMemoryAllocation), 0},
		{"ErrDeviceNotSupported", int64(ErrDeviceNotSupported), 0},
		{"ErrKernelCompilation", int64(ErrKernelCompilation), 0},
		{"ErrExecutionFailed", int64(ErrExecutionFailed), 0},
		{"ErrNullPointer", int64(ErrNullPointer), 0},
		{"ErrUnsupported", int64(ErrUnsupported), 0},
		{"ErrOutOfBounds", int64(ErrOutOfBounds), 0},
		{"ErrWrongContext", int64(ErrWrongContext), 0},
	}
	n := int(C.mfa_go_layout_count())
	for i := range rows {
		if i < n {
			rows[i].cVal = int64(C.mfa_go_layout_at(C.int(i)))
		}
	}
	return rows, n
}
