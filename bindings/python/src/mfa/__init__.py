"""mfa — exact FlashAttention-style attention from libmfa, for numpy, PyTorch and DLPack arrays.

    import mfa
    out = mfa.attention(q, k, v, causal=True)                 # numpy / torch / __dlpack__ arrays
    out, lse = mfa.attention(q, k, v, layout="bhsd", return_lse=True)
    dq, dk, dv = mfa.attention_backward(q, k, v, out, dout, lse)

    import mfa.torch                                           # PyTorch drop-ins, with autograd
    y = mfa.torch.scaled_dot_product_attention(q, k, v, is_causal=True)
    mfa.torch.install()                                        # replace F.scaled_dot_product_attention
    y = mfa.flash_attn_func(q, k, v, causal=True)              # FlashAttention-2 semantics

No compiled extension: libmfa.so is loaded with ctypes (the GIL is released during calls) and
its version is checked at import. Errors are mfa.Error subclasses carrying libmfa's message.
"""

from __future__ import annotations

from . import _lib
from ._context import Context
from ._core import (attention, attention_backward, attention_varlen,
                    attention_varlen_backward)
from ._errors import (DeviceNotSupportedError, Error, ExecutionError, InvalidArgumentError,
                      KernelCompilationError, MemoryAllocationError, NullPointerError,
                      OutOfBoundsError, UnsupportedError, WrongContextError)

__version__ = "0.1.0"
#: The loaded libmfa's version (major, minor, patch), checked against this package at import.
library_version = _lib.version()
#: Path of the loaded libmfa.so.
library_path = str(_lib.path)

__all__ = [
    "attention", "attention_backward", "attention_varlen", "attention_varlen_backward", "Context",
    "flash_attn_func", "flash_attn_varlen_func", "Error", "InvalidArgumentError",
    "MemoryAllocationError", "DeviceNotSupportedError", "KernelCompilationError", "ExecutionError",
    "NullPointerError", "UnsupportedError", "OutOfBoundsError", "WrongContextError",
    "library_version", "library_path", "cuda_available",
]


def cuda_available(device: int = 0) -> bool:
    """True when a CUDA context can be created here (plugin present, driver and device found)."""
    try:
        Context("cuda", device=device).close()
        return True
    except Error:
        return False


def __getattr__(name):
    # torch is imported only when asked for: `import mfa` stays fast and numpy-only.
    if name in ("flash_attn_func", "flash_attn_varlen_func"):
        from . import _flash
        return getattr(_flash, name)
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'mfa' has no attribute {name!r}")
