"""The README's follow-up commands work right after `make run`, uv being in .tools/."""

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / ".tools/bin/uv").exists(), reason="uv is not in .tools/")
@pytest.mark.slow
def test_make_superuser_adds_an_admin_without_uv_on_path(tmp_path):
    database = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "PATH": "/usr/bin:/bin",  # as after `make run` on a machine without uv
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "a-long-enough-password",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        ["make", "superuser"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT username, is_superuser FROM auth_user").fetchall() == [
            ("admin", 1)
        ]
