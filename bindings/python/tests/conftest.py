"""Shared fixtures: a fresh random seed per run (MFA_SEED replays one), the float64 reference
context, and a probe that records the params struct each C call receives (for pointer-identity
tests: an input passed without a copy reaches libmfa at its own address)."""

from __future__ import annotations

import os
import time
import zlib

import numpy as np
import pytest

import mfa

SEED = int(os.environ.get("MFA_SEED") or time.time_ns() % (2 ** 31))


def pytest_report_header(config):
    return [f"MFA_SEED={SEED} (set MFA_SEED to replay)", f"libmfa {mfa.library_version} from {mfa.library_path}"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus not in (0, 5):
        terminalreporter.write_line(f"replay with MFA_SEED={SEED}")


@pytest.fixture
def rng(request):
    # Fresh per test, derived from the run's seed and the test's name so a failure replays alone.
    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture(scope="session")
def ref_ctx():
    ctx = mfa.Context("reference")
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def cpu_ctx():
    ctx = mfa.Context("cpu", threads=2)
    yield ctx
    ctx.close()


@pytest.fixture
def calls(monkeypatch):
    """A list that receives, for every libmfa call, a copy of the params struct it was given
    (mfa._lib.Params), and whether it was the forward (0) or backward (1)."""
    from mfa import _core, _lib

    seen = []
    real = _core.execute

    def probe(ctx, direction, buf, *args, **kw):
        seen.append((direction, _lib.Params.from_buffer_copy(bytes(buf)[: _lib.PARAMS_SIZE])))
        return real(ctx, direction, buf, *args, **kw)

    monkeypatch.setattr(_core, "execute", probe)
    return seen


def dtypes():
    """(numpy dtype, name) for every dtype the numpy path takes here (bfloat16 needs ml_dtypes)."""
    out = [(np.float32, "float32"), (np.float16, "float16")]
    try:
        import ml_dtypes
        out.append((ml_dtypes.bfloat16, "bfloat16"))
    except ImportError:
        pass
    return out
