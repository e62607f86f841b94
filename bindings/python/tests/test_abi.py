"""The ctypes mirrors against the C compiler: every field's offset and every struct's size, read
from include/mfa.h by a tiny C program; the library loading rules; the version check; the GIL."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import mfa
from mfa import _lib

HERE = Path(__file__).resolve().parent


def _header() -> Path:
    for p in (Path(mfa.__file__).parent / "include" / "mfa.h", HERE.parents[2] / "include" / "mfa.h"):
        if p.is_file():
            return p
    pytest.skip("mfa.h not found (neither in the package nor in the source tree)")


def _leaves(cls, prefix=""):
    """(C designator, offset, size) for every field of a ctypes mirror, nested structs included."""
    out = []
    for name, typ in cls._fields_:
        f = getattr(cls, name)
        out.append((prefix + name, f.offset, f.size))
        if isinstance(typ, type) and issubclass(typ, ctypes.Structure):
            out += [(prefix + name + "." + n, f.offset + o, s) for n, o, s in _leaves(typ)]
    return out


MIRRORS = [("mfa_tensor_t", _lib.Tensor), ("mfa_context_options_t", _lib.ContextOptions),
           ("mfa_attention_params_t", _lib.Params)]


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    header = _header()
    lines = []
    for cname, cls in MIRRORS:
        lines.append(f'printf("%s sizeof %zu\\n", "{cname}", sizeof({cname}));')
        for field, _, _ in _leaves(cls):
            lines.append(f'printf("%s %s %zu %zu\\n", "{cname}", "{field}", offsetof({cname}, {field}), '
                         f'sizeof((({cname} *)0)->{field}));')
    src = ("#include <stddef.h>\n#include <stdio.h>\n#include \"mfa.h\"\nint main(void) {\n"
           + "\n".join(lines) + "\nprintf(\"version %d %d %d\\n\", MFA_VERSION_MAJOR, MFA_VERSION_MINOR, "
                                "MFA_VERSION_PATCH);\nreturn 0;\n}\n")
    d = tmp_path_factory.mktemp("abi")
    (d / "probe.c").write_text(src)
    exe = d / "probe"
    subprocess.run([cc, "-std=c11", "-I", str(header.parent), str(d / "probe.c"), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "version":
            table["version"] = tuple(int(x) for x in parts[1:])
        elif parts[1] == "sizeof":
            table[(parts[0], "sizeof")] = int(parts[2])
        else:
            table[(parts[0], parts[1])] = (int(parts[2]), int(parts[3]))
    return table


@pytest.mark.parametrize("cname,cls", MIRRORS, ids=[m[0] for m in MIRRORS])
def test_struct_layout_matches_c(c_layout, cname, cls):
    assert ctypes.sizeof(cls) == c_layout[(cname, "sizeof")]
    for field, off, size in _leaves(cls):
        assert (off, size) == c_layout[(cname, field)], f"{cname}.{field}"


def test_header_version_is_the_loaded_library(c_layout):
    # The header shipped with (or beside) the package and the library loaded are one version.
    assert c_layout["version"] == mfa.library_version
    assert mfa.library_version[0] == _lib.ABI_MAJOR and mfa.library_version[1] >= _lib.ABI_MINOR


def test_params_init_sets_struct_size_and_defaults():
    buf = _lib.ParamsBuffer()
    _lib.params_init(ctypes.byref(buf))
    p = buf.p
    assert p.struct_size >= ctypes.sizeof(_lib.Params)  # the library's own size (ours or larger)
    assert (p.mask, p.mask_align, p.window_left, p.window_right) == (0, 0, -1, -1)
    from mfa import _core
    mine = _lib.Params.from_buffer_copy(_core._TEMPLATE[: ctypes.sizeof(_lib.Params)])
    assert mine.struct_size == ctypes.sizeof(_lib.Params)


def test_mfa_library_env_is_honoured(tmp_path):
    # A bad MFA_LIBRARY is an ImportError naming it; a good one is the library loaded.
    env = dict(os.environ, MFA_LIBRARY=str(tmp_path / "nope.so"))
    r = subprocess.run([sys.executable, "-c", "import mfa"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "MFA_LIBRARY" in r.stderr
    env["MFA_LIBRARY"] = mfa.library_path
    r = subprocess.run([sys.executable, "-c", "import mfa; print(mfa.library_path)"], env=env,
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == mfa.library_path


def test_import_does_not_import_torch():
    r = subprocess.run([sys.executable, "-c", "import sys, mfa; print('torch' in sys.modules)"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_gil_is_released_during_calls(rng):
    # A long call on another thread must leave this thread free to run Python code.
    q = rng.standard_normal((1, 768, 1, 64)).astype(np.float32)
    ctx = mfa.Context("reference")  # slow, single-threaded: a long call
    done = threading.Event()
    elapsed = []

    def work():
        t = time.perf_counter()
        mfa.attention(q, q, q, context=ctx)
        elapsed.append(time.perf_counter() - t)
        done.set()

    th = threading.Thread(target=work)
    th.start()
    spins = 0
    while not done.is_set():
        spins += 1
    th.join()
    ctx.close()
    # With the GIL held for the whole call this loop would barely run (a switch every 5 ms at
    # best); released, it spins millions of times per second.
    assert elapsed[0] > 0.02, "the call was too short to tell"
    assert spins > 10000 * elapsed[0], (spins, elapsed[0])
