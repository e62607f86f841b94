"""_lib.py — finds and loads libmfa.so with ctypes, mirrors the C structs, declares the functions.

What this is: the only file that knows the C ABI (include/mfa.h). Everything else in the package
goes through the names defined here. The struct mirrors are checked field by field against the
C compiler's own offsets by tests/test_abi.py.

Where libmfa.so comes from, first found wins:
  1. the environment variable MFA_LIBRARY (a path to a libmfa.so; for development),
  2. the package directory (the wheel built by `pip install ./bindings/python` carries it, and
     libmfa_cuda.so beside it when nvcc was present at build time),
  3. <repository>/build/libmfa.so, for a source tree used without installing
     (PYTHONPATH=bindings/python/src after `cmake -S . -B build && cmake --build build`).

The GIL: the library is opened with ctypes.CDLL (not PyDLL), and ctypes releases the GIL for the
duration of every foreign call made through a CDLL, so attention calls run while other Python
threads go on. A context is used by one thread at a time (see _context.py for how).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# The ABI this package was written against: same major, and a minor at least this one (the params
# struct only grows at its end, so a newer 0.x library is fine, an older one may lack fields).
ABI_MAJOR = 0
ABI_MINOR = 1

# ---- Constants (values from include/mfa.h) --------------------------------------------------
SUCCESS = 0
DTYPE_F16, DTYPE_BF16, DTYPE_F32, DTYPE_BOOL = 0, 1, 2, 3
BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA, BACKEND_REFERENCE = 0, 1, 2, 3
MASK_NONE, MASK_CAUSAL, MASK_WINDOW = 0, 1, 2
ALIGN_TOP_LEFT, ALIGN_BOTTOM_RIGHT = 0, 1
DIRECTION_FWD, DIRECTION_BWD = 0, 1

DTYPE_SIZE = {DTYPE_F16: 2, DTYPE_BF16: 2, DTYPE_F32: 4, DTYPE_BOOL: 1}
DTYPE_NAME = {DTYPE_F16: "float16", DTYPE_BF16: "bfloat16", DTYPE_F32: "float32", DTYPE_BOOL: "bool"}


# ---- Struct mirrors ---------------------------------------------------------------------------
class Tensor(ctypes.Structure):
    """mfa_tensor_t: base pointer, element type, element strides [batch, seq, head, dim]
    (attn_mask: [batch, head, q, kv]; 0 = broadcast)."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("buffer", ctypes.c_void_p),
        ("byte_offset", ctypes.c_uint64),
        ("dtype", ctypes.c_int32),
        ("reserved_", ctypes.c_int32),
        ("stride", ctypes.c_int64 * 4),
    ]


class ContextOptions(ctypes.Structure):
    """mfa_context_options_t."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("backend", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
    ]


class Params(ctypes.Structure):
    """mfa_attention_params_t. Always filled by mfa_attention_params_init first."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved_", ctypes.c_uint32),
        ("batch", ctypes.c_int64),
        ("seqlen_q", ctypes.c_int64),
        ("seqlen_kv", ctypes.c_int64),
        ("heads_q", ctypes.c_int64),
        ("heads_kv", ctypes.c_int64),
        ("head_dim_qk", ctypes.c_int64),
        ("head_dim_v", ctypes.c_int64),
        ("q", Tensor),
        ("k", Tensor),
        ("v", Tensor),
        ("o", Tensor),
        ("lse", ctypes.c_void_p),
        ("softmax_scale", ctypes.c_float),
        ("softcap", ctypes.c_float),
        ("mask", ctypes.c_int32),
        ("mask_align", ctypes.c_int32),
        ("window_left", ctypes.c_int64),
        ("window_right", ctypes.c_int64),
        ("block_mask", ctypes.c_void_p),
        ("block_q", ctypes.c_int64),
        ("block_kv", ctypes.c_int64),
        ("block_mask_rows", ctypes.c_int64),
        ("block_mask_cols", ctypes.c_int64),
        ("block_mask_stride", ctypes.c_int64 * 4),
        ("attn_mask", Tensor),
        ("cu_seqlens_q", ctypes.c_void_p),
        ("cu_seqlens_kv", ctypes.c_void_p),
        ("dout", Tensor),
        ("dq", Tensor),
        ("dk", Tensor),
        ("dv", Tensor),
        ("deterministic", ctypes.c_int32),
        ("allow_tf32", ctypes.c_int32),
    ]


# A newer 0.x library may have a larger params struct: mfa_attention_params_init writes
# sizeof(its struct) bytes, so the struct we hand it sits in a buffer with this much room to
# spare, and struct_size is then set to our size (fields we do not know keep their defaults).
PARAMS_SLACK = 1024


class ParamsBuffer(ctypes.Structure):
    _fields_ = [("p", Params), ("slack_", ctypes.c_uint8 * PARAMS_SLACK)]


# ---- Loading ----------------------------------------------------------------------------------
_PACKAGE_DIR = Path(__file__).resolve().parent


def candidate_paths() -> list[Path]:
    """Where libmfa.so is looked for, in order."""
    paths = []
    env = os.environ.get("MFA_LIBRARY")
    if env:
        paths.append(Path(env))
    paths.append(_PACKAGE_DIR / "libmfa.so")
    # bindings/python/src/mfa -> repository root
    paths.append(_PACKAGE_DIR.parents[3] / "build" / "libmfa.so" if len(_PACKAGE_DIR.parents) > 3 else _PACKAGE_DIR)
    return paths


def _open() -> tuple[ctypes.CDLL, Path]:
    env = os.environ.get("MFA_LIBRARY")
    tried = []
    for path in candidate_paths():
        if path.is_file():
            # CDLL, not PyDLL: ctypes releases the GIL around each call (see the top of the file).
            return ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL), path
        tried.append(str(path))
        if env and str(path) == env:
            raise ImportError(f"mfa: MFA_LIBRARY={env!r} is not a file")
    raise ImportError("mfa: libmfa.so not found; looked in: " + ", ".join(tried)
                      + ". Install with `pip install ./bindings/python`, or build the library "
                        "(cmake -S . -B build && cmake --build build) or set MFA_LIBRARY.")


lib, path = _open()

_c = ctypes
_ctx = _c.c_void_p
_signatures = {
    "mfa_get_version": (None, [_c.POINTER(_c.c_int)] * 3),
    "mfa_error_string": (_c.c_char_p, [_c.c_int]),
    "mfa_last_error_message": (_c.c_char_p, [_ctx]),
    "mfa_context_options_init": (None, [_c.POINTER(ContextOptions)]),
    "mfa_create_context_ex": (_c.c_int, [_c.POINTER(_ctx), _c.POINTER(ContextOptions)]),
    "mfa_destroy_context": (None, [_ctx]),
    "mfa_context_backend_name": (_c.c_char_p, [_ctx]),
    "mfa_context_description": (_c.c_char_p, [_ctx]),
    "mfa_context_num_threads": (_c.c_int32, [_ctx]),
    "mfa_attention_params_init": (None, [_c.c_void_p]),
    # The params as POINTER(ParamsBuffer): a ParamsBuffer is then passed as it is (ctypes takes
    # its address), 0.2 us less per call than byref() into a c_void_p.
    "mfa_attention_fwd": (_c.c_int, [_ctx, _c.POINTER(ParamsBuffer)]),
    "mfa_attention_bwd": (_c.c_int, [_ctx, _c.POINTER(ParamsBuffer)]),
    "mfa_attention_supported": (_c.c_int, [_ctx, _c.POINTER(ParamsBuffer), _c.c_int32]),
    "mfa_is_device_supported": (_c.c_bool, []),
}
for _name, (_res, _args) in _signatures.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

# Being added by the CUDA work: sets the stream (a cudaStream_t as void *) that a CUDA context's
# calls are queued on. Looked up, not required: without it CUDA calls run on the context's own
# stream (the legacy default stream unless the backend says otherwise).
try:
    set_stream = lib.mfa_context_set_stream
    set_stream.restype = _c.c_int
    set_stream.argtypes = [_ctx, _c.c_void_p]
except AttributeError:
    set_stream = None


def version() -> tuple[int, int, int]:
    """The loaded library's version (mfa_get_version)."""
    v = [_c.c_int(), _c.c_int(), _c.c_int()]
    lib.mfa_get_version(*[_c.byref(x) for x in v])
    return v[0].value, v[1].value, v[2].value


_v = version()
if _v[0] != ABI_MAJOR or _v[1] < ABI_MINOR:
    raise ImportError(f"mfa: {path} is libmfa {_v[0]}.{_v[1]}.{_v[2]}, but this package needs "
                      f"{ABI_MAJOR}.{ABI_MINOR}.x or a newer {ABI_MAJOR}.x (same major version = same ABI)")

fwd = lib.mfa_attention_fwd
bwd = lib.mfa_attention_bwd
supported = lib.mfa_attention_supported
params_init = lib.mfa_attention_params_init
last_error_message = lib.mfa_last_error_message
PARAMS_SIZE = _c.sizeof(Params)
