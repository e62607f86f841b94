// Package mfa is the Go binding of libmfa: exact (FlashAttention-style) attention through the
// library's C ABI (include/mfa.h), on Go slices passed without copying for the duration of each
// call.
//
//	ctx, err := mfa.NewContextWithOptions(mfa.Options{Backend: mfa.BackendCPU})
//	if err != nil { ... }
//	defer ctx.Close()
//	p := mfa.NewParams()
//	p.Batch, p.SeqlenQ, p.SeqlenKV = 2, 512, 512
//	p.HeadsQ, p.HeadsKV = 8, 2 // GQA: 4 query heads per kv head
//	p.HeadDimQK, p.HeadDimV = 64, 64
//	p.Q = mfa.F32(q).Contiguous(512, 8, 64) // [batch, seq, heads, dim]
//	p.K = mfa.F32(k).Contiguous(512, 2, 64)
//	p.V = mfa.F32(v).Contiguous(512, 2, 64)
//	p.O = mfa.F32(o).Contiguous(512, 8, 64)
//	p.Mask = mfa.MaskCausal
//	if err := ctx.Forward(&p); err != nil {
//		var e *mfa.Error // errors.As(err, &e): e.Code, e.Message (the library's text)
//	}
//
// What the package adds to the C API: a Context that is closed by Close (with a finalizer as a
// safety net) and serialises the calls made on it, tensors over Go slices whose bounds the
// library checks (each slice is wrapped as an mfa buffer of exactly its bytes during the call),
// Float16/BFloat16 storage types, and errors carrying the library's code and message
// (errors.Is(err, mfa.ErrInvalidArgs) works). Every computation is the library's.
//
// Building: cgo finds mfa.h in ../../include and libmfa.so in ../../build (this repository's
// CMake build, with an rpath). For an installed libmfa set CGO_CFLAGS / CGO_LDFLAGS. See
// docs/bindings.md, which also covers device pointers on a CUDA context.
package mfa
