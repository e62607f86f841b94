"""_context.py — mfa.Context (an owned mfa_context_t) and the default contexts.

A libmfa context may be used by one thread at a time, and ctypes drops the GIL during calls, so
every Context carries a lock held for the duration of each call on it (and the reading of its
error message). Calls that name no context use a default one per (thread, backend, device):
threads never wait for each other, and a CUDA device gets its own context.
"""

from __future__ import annotations

import ctypes
import threading

from . import _lib
from ._errors import InvalidArgumentError, from_code

_BACKENDS = {"auto": _lib.BACKEND_AUTO, "cpu": _lib.BACKEND_CPU, "cuda": _lib.BACKEND_CUDA,
             "reference": _lib.BACKEND_REFERENCE}


class Context:
    """An explicit libmfa context.

        ctx = mfa.Context(backend="cpu", threads=4)        # "cpu", "cuda", "reference", "auto"
        out = mfa.attention(q, k, v, context=ctx)            # or ctx.attention(q, k, v)
        ctx.close()                                          # or `with mfa.Context(...) as ctx:`

    backend "auto" follows the MFA_BACKEND environment variable (else cpu). device is the CUDA
    device index; threads 0 means MFA_NUM_THREADS or every online core. Creating a "cuda" context
    where the plugin or a GPU is missing raises mfa.DeviceNotSupportedError with the reason.
    """

    __slots__ = ("_handle", "_lock", "_stream", "backend", "device", "is_cuda", "__weakref__")

    def __init__(self, backend: str | int = "cpu", device: int = 0, threads: int = 0):
        if isinstance(backend, str):
            kind = _BACKENDS.get(backend.lower())
            if kind is None:
                raise InvalidArgumentError(f"backend={backend!r} is not one of {', '.join(_BACKENDS)}")
        else:
            kind = int(backend)
        self._handle = None
        opts = _lib.ContextOptions()
        _lib.lib.mfa_context_options_init(ctypes.byref(opts))
        opts.backend = kind
        opts.device = int(device)
        opts.num_threads = int(threads)
        handle = ctypes.c_void_p()
        err = _lib.lib.mfa_create_context_ex(ctypes.byref(handle), ctypes.byref(opts))
        if err:
            # A failed create keeps its message in the calling thread's NULL-context slot.
            raise from_code(err, _lib.last_error_message(None).decode(errors="replace"))
        self._handle = handle.value
        self._lock = threading.Lock()
        self._stream = None  # the stream last given to mfa_context_set_stream
        self.backend = _lib.lib.mfa_context_backend_name(self._handle).decode()
        self.device = int(device)
        self.is_cuda = self.backend == "cuda"

    @property
    def handle(self) -> int:
        """The mfa_context_t as an integer (for other C code); raises after close()."""
        if self._handle is None:
            raise InvalidArgumentError("this mfa.Context is closed")
        return self._handle

    @property
    def description(self) -> str:
        return _lib.lib.mfa_context_description(self.handle).decode()

    @property
    def num_threads(self) -> int:
        return _lib.lib.mfa_context_num_threads(self.handle)

    def close(self) -> None:
        """Destroys the C context. Further calls on it raise mfa.InvalidArgumentError."""
        h, self._handle = self._handle, None
        if h is not None:
            with self._lock:
                _lib.lib.mfa_destroy_context(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        h = getattr(self, "_handle", None)
        if h is not None and _lib is not None and _lib.lib is not None:
            _lib.lib.mfa_destroy_context(h)
            self._handle = None

    def __repr__(self):
        state = self.description if self._handle is not None else "closed"
        return f"mfa.Context(backend={self.backend!r}, device={self.device}: {state})"

    # Convenience: the module-level functions with this context.
    def attention(self, q, k, v, **kw):
        from ._core import attention
        return attention(q, k, v, context=self, **kw)

    def attention_backward(self, *args, **kw):
        from ._core import attention_backward
        return attention_backward(*args, context=self, **kw)

    def attention_varlen(self, *args, **kw):
        from ._core import attention_varlen
        return attention_varlen(*args, context=self, **kw)

    def supported(self, q, k, v, **kw) -> bool:
        """True when this context would run mfa.attention(q, k, v, **kw) (mfa_attention_supported)."""
        from ._core import supported
        return supported(q, k, v, context=self, **kw)


_local = threading.local()


def default_context(device: int) -> Context:
    """This thread's default context for host memory (device -1: cpu backend) or CUDA device i."""
    cache = getattr(_local, "contexts", None)
    if cache is None:
        cache = _local.contexts = {}
    ctx = cache.get(device)
    if ctx is None:
        ctx = Context("cpu") if device < 0 else Context("cuda", device=device)
        cache[device] = ctx
    return ctx
