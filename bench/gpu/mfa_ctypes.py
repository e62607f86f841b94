"""mfa_ctypes.py — the few libmfa calls the GPU benchmark needs, through ctypes on raw torch
tensors (no dependency on bindings/python). Layouts mirror include/mfa.h exactly."""
import ctypes
import os

class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("buffer", ctypes.c_void_p), ("byte_offset", ctypes.c_uint64),
                ("dtype", ctypes.c_int32), ("reserved_", ctypes.c_int32), ("stride", ctypes.c_int64 * 4)]

class Params(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("reserved_", ctypes.c_uint32),
                ("batch", ctypes.c_int64), ("seqlen_q", ctypes.c_int64), ("seqlen_kv", ctypes.c_int64),
                ("heads_q", ctypes.c_int64), ("heads_kv", ctypes.c_int64),
                ("head_dim_qk", ctypes.c_int64), ("head_dim_v", ctypes.c_int64),
                ("q", Tensor), ("k", Tensor), ("v", Tensor), ("o", Tensor),
                ("lse", ctypes.c_void_p), ("softmax_scale", ctypes.c_float), ("softcap", ctypes.c_float),
                ("mask", ctypes.c_int32), ("mask_align", ctypes.c_int32),
                ("window_left", ctypes.c_int64), ("window_right", ctypes.c_int64),
                ("block_mask", ctypes.c_void_p), ("block_q", ctypes.c_int64), ("block_kv", ctypes.c_int64),
                ("block_mask_rows", ctypes.c_int64), ("block_mask_cols", ctypes.c_int64),
                ("block_mask_stride", ctypes.c_int64 * 4), ("attn_mask", Tensor),
                ("cu_seqlens_q", ctypes.c_void_p), ("cu_seqlens_kv", ctypes.c_void_p),
                ("dout", Tensor), ("dq", Tensor), ("dk", Tensor), ("dv", Tensor),
                ("deterministic", ctypes.c_int32), ("allow_tf32", ctypes.c_int32)]

class Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("backend", ctypes.c_int32), ("device", ctypes.c_int32),
                ("num_threads", ctypes.c_int32)]

DTYPE = {"torch.float16": 0, "torch.bfloat16": 1, "torch.float32": 2}

class Mfa:
    def __init__(self, libdir):
        self.lib = ctypes.CDLL(os.path.join(libdir, "libmfa.so"))
        L = self.lib
        L.mfa_last_error_message.restype = ctypes.c_char_p
        L.mfa_context_description.restype = ctypes.c_char_p
        L.mfa_get_gpu_latency.restype = ctypes.c_double
        L.mfa_context_set_stream.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        L.mfa_attention_fwd.argtypes = [ctypes.c_void_p, ctypes.POINTER(Params)]
        L.mfa_attention_bwd.argtypes = [ctypes.c_void_p, ctypes.POINTER(Params)]
        L.mfa_last_error_message.argtypes = [ctypes.c_void_p]
        L.mfa_context_description.argtypes = [ctypes.c_void_p]
        o = Options()
        L.mfa_context_options_init(ctypes.byref(o))
        o.backend = 2  # MFA_BACKEND_CUDA
        self.ctx = ctypes.c_void_p()
        err = L.mfa_create_context_ex(ctypes.byref(self.ctx), ctypes.byref(o))
        if err:
            raise RuntimeError(L.mfa_last_error_message(None).decode())
        self.description = L.mfa_context_description(self.ctx).decode()

    def set_stream(self, stream_ptr):
        self._check(self.lib.mfa_context_set_stream(self.ctx, ctypes.c_void_p(stream_ptr)))

    def _check(self, err):
        if err:
            raise RuntimeError(f"libmfa error {err}: {self.lib.mfa_last_error_message(self.ctx).decode()}")

    @staticmethod
    def tensor(t, x):
        """x: a torch tensor viewed as [batch, seq, head, dim]."""
        t.data = x.data_ptr()
        t.dtype = DTYPE[str(x.dtype)]
        for i, s in enumerate(x.stride()):
            t.stride[i] = s

    def params(self, q, k, v, o, lse=None, causal=False, window=None, allow_tf32=False,
               dout=None, dq=None, dk=None, dv=None):
        p = Params()
        self.lib.mfa_attention_params_init(ctypes.byref(p))
        p.batch, p.seqlen_q, p.heads_q, p.head_dim_qk = q.shape
        p.seqlen_kv, p.heads_kv = k.shape[1], k.shape[2]
        p.head_dim_v = v.shape[3]
        for name, x in (("q", q), ("k", k), ("v", v), ("o", o), ("dout", dout), ("dq", dq), ("dk", dk), ("dv", dv)):
            if x is not None:
                self.tensor(getattr(p, name), x)
        if lse is not None:
            p.lse = lse.data_ptr()
        if causal:
            p.mask = 1
        if window is not None:
            p.mask, (p.window_left, p.window_right) = 2, window
        p.allow_tf32 = int(allow_tf32)
        return p

    def fwd(self, p):
        self._check(self.lib.mfa_attention_fwd(self.ctx, ctypes.byref(p)))

    def bwd(self, p):
        self._check(self.lib.mfa_attention_bwd(self.ctx, ctypes.byref(p)))
