"""_errors.py — mfa.Error and one subclass per libmfa status code.

Every failed C call raises the subclass of its status code, carrying the library's own message
(which names the argument and the bad value). Checks the Python layer makes itself (shapes that
the C ABI cannot see, such as v's length against k's) raise the same classes, in the same style.
Each subclass also derives from the matching built-in exception, so `except ValueError` works.
"""

from __future__ import annotations


class Error(Exception):
    """A libmfa failure. `code` is the C status (mfa_error_t), `message` the detailed text."""

    code = -1

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgumentError(Error, ValueError):
    code = 1


class MemoryAllocationError(Error, MemoryError):
    code = 2


class DeviceNotSupportedError(Error, RuntimeError):
    code = 3


class KernelCompilationError(Error, RuntimeError):
    code = 4


class ExecutionError(Error, RuntimeError):
    code = 5


class NullPointerError(Error, ValueError):
    code = 6


class UnsupportedError(Error, NotImplementedError):
    """A valid request that this backend (or this binding) does not run."""

    code = 7


class OutOfBoundsError(Error, ValueError):
    code = 8


class WrongContextError(Error, ValueError):
    code = 9


_BY_CODE = {cls.code: cls for cls in (InvalidArgumentError, MemoryAllocationError,
                                      DeviceNotSupportedError, KernelCompilationError,
                                      ExecutionError, NullPointerError, UnsupportedError,
                                      OutOfBoundsError, WrongContextError)}


def from_code(code: int, message: str) -> Error:
    """The exception for a C status code (unknown future codes give the base class)."""
    cls = _BY_CODE.get(code, Error)
    return cls(message, code)
