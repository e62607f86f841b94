"""_tensor.py — reads any supported array object as (pointer, dtype, shape, element strides,
device) without copying it, and allocates outputs with the array's own framework.

Supported inputs:
  numpy.ndarray       float32, float16, bfloat16 (ml_dtypes), bool (masks); host memory
  torch.Tensor        the same dtypes (torch.bfloat16, torch.bool), on cpu or cuda
  anything with __dlpack__ (JAX, CuPy, ...): read through the DLPack capsule (DLPack 0.x and 1.x)
Nothing here copies an input: a layout libmfa can read through strides is passed as it is (any
strides are accepted by the C API, including 0 and negative ones).

Outputs follow the first input: numpy arrays for numpy, torch tensors on the same device for
torch, and for other DLPack producers the array API namespace of the input
(x.__array_namespace__().empty(shape, dtype=x.dtype, device=x.device)) or numpy for host data.
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np

from . import _lib
from ._errors import InvalidArgumentError, UnsupportedError

# Framework kinds.
NUMPY, TORCH, DLPACK = 0, 1, 2

_NP_INFO = {np.dtype(np.float32): (_lib.DTYPE_F32, 4), np.dtype(np.float16): (_lib.DTYPE_F16, 2),
            np.dtype(np.bool_): (_lib.DTYPE_BOOL, 1), np.dtype(np.uint8): (_lib.DTYPE_BOOL, 1)}


def _np_info(dt, name, mask):
    """(dtype code, itemsize) of a numpy dtype not seen yet: bfloat16 (ml_dtypes, recognised by
    name so ml_dtypes need not be imported here) or an unsupported dtype (raises)."""
    if dt.name == "bfloat16" and dt.itemsize == 2:
        _NP_INFO[dt] = (_lib.DTYPE_BF16, 2)
        return _NP_INFO[dt]
    raise _dtype_error(name, dt, mask)


# ---- numpy: the data pointer ------------------------------------------------------------------
# a.ctypes.data and a.__array_interface__ cost ~3 us each (they build objects). The data pointer
# is the first field after PyObject_HEAD in numpy's public PyArrayObject_fields struct
# (ndarraytypes.h), stable across numpy 1.x and 2.x; read it directly (0.3 us), after checking at
# import that it agrees with the slow, official path. Any disagreement selects the slow path.
_read_ptr = ctypes.c_void_p.from_address
_DATA_OFFSET = 2 * ctypes.sizeof(ctypes.c_void_p)  # ob_refcnt, ob_type


def _np_data_slow(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _np_data_fast(a: np.ndarray) -> int:
    return _read_ptr(id(a) + _DATA_OFFSET).value or 0


def _probe_fast_path() -> bool:
    try:
        base = np.arange(64, dtype=np.float32)
        for a in (base, base[3:], base[::-2], base.reshape(8, 8).T[1:, 2:]):
            if _np_data_fast(a) != _np_data_slow(a):
                return False
        return type(np.empty(1)) is np.ndarray
    except Exception:  # pragma: no cover - exotic interpreters
        return False


np_data = _np_data_fast if _probe_fast_path() else _np_data_slow


# An adapted array is a plain tuple, unpacked by name at the call sites (a tuple costs 0.1 us to
# build, a small object 0.5 us, and this is paid four times per call):
#     (obj, ptr, dtype, shape, strides, device, kind, keep)
# obj: the array itself; ptr: address of element 0; dtype: MFA_DTYPE_*; strides: in elements;
# device: -1 for host memory, else the CUDA device index; kind: NUMPY / TORCH / DLPACK;
# keep: what must stay alive while ptr is used (a DLPack capsule), else None.
OBJ, PTR, DTYPE, SHAPE, STRIDES, DEVICE, KIND, KEEP = range(8)
Arr = tuple


def _torch():
    return sys.modules.get("torch")


def is_torch(x) -> bool:
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, t.Tensor)


_TORCH_DTYPES: dict = {}


def torch_dtype_code(dt):
    """MFA_DTYPE_* of a torch dtype, or None."""
    code = _TORCH_DTYPES.get(dt)
    if code is not None or _TORCH_DTYPES:
        return code
    return _torch_dtype_code(dt)


def _torch_dtype_code(dt):
    if not _TORCH_DTYPES:
        t = _torch()
        _TORCH_DTYPES.update({t.float32: _lib.DTYPE_F32, t.float16: _lib.DTYPE_F16,
                              t.bfloat16: _lib.DTYPE_BF16, t.bool: _lib.DTYPE_BOOL,
                              t.uint8: _lib.DTYPE_BOOL})
    return _TORCH_DTYPES.get(dt)


def _stride_error(name, st, size):
    return InvalidArgumentError(f"{name}.strides={st} (bytes) are not multiples of its {size}-byte elements")


def _dtype_error(name, dt, mask=False):
    allowed = "float32, float16, bfloat16" + (" or bool" if mask else "")
    return UnsupportedError(f"{name}.dtype={dt} is not supported (libmfa takes {allowed})")


def adapt(x, name: str, mask: bool = False) -> Arr:
    """Reads x (numpy, torch or DLPack) without copying. `mask` allows bool/uint8."""
    if type(x) is np.ndarray:  # the hot path: ~1 us
        info = _NP_INFO.get(x.dtype)
        if info is None:
            info = _np_info(x.dtype, name, mask)
        code, size = info
        if code == _lib.DTYPE_BOOL and not mask:
            raise _dtype_error(name, x.dtype, mask)
        st = x.strides
        if size > 1:
            # Sizes are powers of two, so OR-ing the strides (two's complement, also for negative
            # ones) and masking the low bits tells whether every stride is a whole element.
            if len(st) == 4:
                a, b, c, d = st
                if (a | b | c | d) & (size - 1):
                    raise _stride_error(name, st, size)
                st = (a // size, b // size, c // size, d // size)
            else:
                acc = 0
                for s in st:
                    acc |= s
                if acc & (size - 1):
                    raise _stride_error(name, st, size)
                st = tuple(s // size for s in st)
        return (x, np_data(x), code, x.shape, st, -1, NUMPY, None)
    t = _torch()
    if t is not None and isinstance(x, t.Tensor):
        code = _TORCH_DTYPES.get(x.dtype) if _TORCH_DTYPES else _torch_dtype_code(x.dtype)
        if code is None or (code == _lib.DTYPE_BOOL and not mask):
            raise _dtype_error(name, x.dtype, mask)
        if x.is_cuda:
            dev = x.get_device()
        elif x.is_cpu:
            dev = -1
        else:
            raise UnsupportedError(f"{name} is on device {x.device}; libmfa takes cpu and cuda tensors")
        return (x, x.data_ptr(), code, x.shape, x.stride(), dev, TORCH, None)
    if isinstance(x, np.ndarray):  # a subclass (np.matrix, masked arrays are refused: they hide data)
        if isinstance(x, np.ma.MaskedArray):
            raise UnsupportedError(f"{name} is a numpy masked array; pass .data and an attn_mask")
        return adapt(x.view(np.ndarray), name, mask)
    if hasattr(x, "__dlpack__"):
        return _adapt_dlpack(x, name, mask)
    raise InvalidArgumentError(f"{name} is a {type(x).__module__}.{type(x).__qualname__}; libmfa takes "
                               "numpy arrays, torch tensors or objects with __dlpack__")


# ---- DLPack ---------------------------------------------------------------------------------------
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):  # DLPack < 1.0: capsule "dltensor"
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class _DLManagedTensorVersioned(ctypes.Structure):  # DLPack >= 1.0: capsule "dltensor_versioned"
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p), ("flags", ctypes.c_uint64), ("dl_tensor", _DLTensor)]


_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]
_capsule_ptr = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_ptr.restype = ctypes.c_void_p
_capsule_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]

_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BFLOAT, _DL_BOOL = 0, 1, 2, 4, 6
_DL_DTYPES = {(_DL_FLOAT, 32): _lib.DTYPE_F32, (_DL_FLOAT, 16): _lib.DTYPE_F16,
              (_DL_BFLOAT, 16): _lib.DTYPE_BF16, (_DL_BOOL, 8): _lib.DTYPE_BOOL,
              (_DL_UINT, 8): _lib.DTYPE_BOOL}


def dlpack_device(x):
    """(device_type, device_id) of a DLPack producer, from __dlpack_device__ when it has one."""
    f = getattr(x, "__dlpack_device__", None)
    if f is None:
        return (_DL_CPU, 0)
    t, i = f()
    return (int(t), int(i))


def _adapt_dlpack(x, name: str, mask: bool) -> Arr:
    dev_type, _ = dlpack_device(x)
    # A CUDA producer is asked to make its data ready on the legacy default stream (stream=1),
    # the stream our call runs on for non-torch CUDA inputs (see _core.py).
    kwargs = {"stream": 1} if dev_type in (_DL_CUDA, _DL_CUDA_MANAGED) else {}
    try:
        capsule = x.__dlpack__(max_version=(1, 0), **kwargs)
    except TypeError:  # producers older than DLPack 1.0 have no max_version
        capsule = x.__dlpack__(**kwargs)
    cname = _capsule_name(capsule)
    ptr = _capsule_ptr(capsule, cname)
    if cname == b"dltensor_versioned":
        dl = _DLManagedTensorVersioned.from_address(ptr).dl_tensor
    elif cname == b"dltensor":
        dl = _DLManagedTensor.from_address(ptr).dl_tensor
    else:
        raise InvalidArgumentError(f"{name}.__dlpack__() returned a capsule named {cname!r}")
    code = _DL_DTYPES.get((dl.dtype.code, dl.dtype.bits)) if dl.dtype.lanes == 1 else None
    if code is None or (code == _lib.DTYPE_BOOL and not mask):
        raise _dtype_error(name, f"DLPack(code={dl.dtype.code}, bits={dl.dtype.bits}, lanes={dl.dtype.lanes})", mask)
    nd = dl.ndim
    shape = tuple(dl.shape[i] for i in range(nd))
    if dl.strides:
        strides = tuple(dl.strides[i] for i in range(nd))
    else:  # compact row-major
        acc, rev = 1, []
        for n in reversed(shape):
            rev.append(acc)
            acc *= n
        strides = tuple(reversed(rev))
    dtype = dl.device.device_type
    if dtype in (_DL_CPU, _DL_CUDA_HOST):
        device = -1
    elif dtype in (_DL_CUDA, _DL_CUDA_MANAGED):
        device = dl.device.device_id
    else:
        raise UnsupportedError(f"{name} is on DLPack device type {dtype}; libmfa takes host (1, 3) and CUDA (2, 13) memory")
    data = (dl.data or 0) + dl.byte_offset
    # The capsule is not consumed (its name is left as is): when it is freed after the call, its
    # destructor runs the producer's deleter, as the DLPack protocol specifies.
    return (x, data, code, shape, strides, device, DLPACK, capsule)


# ---- Outputs ----------------------------------------------------------------------------------------
def empty_like_framework(ref: Arr, shape: tuple, dtype=None):
    """An uninitialised output of `shape` (and dtype: the reference's unless given as 'float32')
    allocated by ref's framework on ref's device, returned with its adapted tuple."""
    x, kind, device = ref[OBJ], ref[KIND], ref[DEVICE]
    f32 = dtype == "float32"
    if kind == TORCH:
        t = _torch()
        # x.new_empty(*shape): same device and dtype; 1.3 us where torch.empty(shape, dtype=,
        # device=) takes 4.7 (its tuple and keyword parsing).
        out = x.new_empty(*shape, dtype=t.float32) if f32 else x.new_empty(*shape)
        return out, (out, out.data_ptr(), _lib.DTYPE_F32 if f32 else ref[DTYPE], out.shape, out.stride(),
                     device, TORCH, None)
    if kind == NUMPY:
        out = np.empty(shape, dtype=np.float32 if f32 else x.dtype)
        return out, adapt(out, "out")
    ns = getattr(x, "__array_namespace__", None)
    if ns is not None:
        xp = ns()
        dt = xp.float32 if f32 else x.dtype
        try:
            out = xp.empty(shape, dtype=dt, device=x.device)
        except TypeError:
            out = xp.empty(shape, dtype=dt)
        return out, adapt(out, "out")
    if device < 0:
        # No array API namespace: host data comes back as numpy (it speaks DLPack too).
        dt = np.float32 if f32 else {_lib.DTYPE_F32: np.float32, _lib.DTYPE_F16: np.float16}.get(ref[DTYPE])
        if dt is None:
            import ml_dtypes  # bfloat16 for numpy
            dt = ml_dtypes.bfloat16
        out = np.empty(shape, dtype=dt)
        return out, adapt(out, "out")
    raise UnsupportedError(f"cannot allocate an output for a {type(x).__qualname__} on CUDA device {device} "
                           "(it has no __array_namespace__); pass out=")
