"""Production settings, checked by Django itself in a fresh process."""

import os
import secrets
import subprocess
import sys

from tests.servers import ROOT

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_environment_passes_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_off_refuses_the_public_development_key():
    result = manage("check", env={"DJANGO_DEBUG": "false"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set: the development key is public" in result.stderr


def test_local_defaults_run_without_any_configuration():
    result = manage("check", env={})
    assert result.returncode == 0, result.stderr


def test_behind_a_tls_proxy_check_deploy_still_passes():
    env = PRODUCTION | {"DJANGO_SECURE_PROXY_SSL_HEADER": "true"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_price_table_is_read_from_json():
    prices = '{"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}'
    result = manage("check", env={"CHAT_PRICES": prices})
    assert result.returncode == 0, result.stderr


def test_a_malformed_price_table_is_refused_saying_how_to_write_it():
    for prices in ("{not json", '{"gpt-4o-mini": 0.15}', '{"m": {"prompt": 1}}'):
        result = manage("check", env={"CHAT_PRICES": prices})
        assert result.returncode != 0
        assert "CHAT_PRICES" in result.stderr and '"prompt"' in result.stderr


def test_sqlite_writes_ahead_syncs_at_checkpoints_and_keeps_its_connections(tmp_path):
    # Saves of a streaming reply must not each wait for the disk twice.
    query = (
        "from django.db import connection; cursor = connection.cursor(); "
        "print(cursor.execute('PRAGMA journal_mode').fetchone()[0], "
        "cursor.execute('PRAGMA synchronous').fetchone()[0], "
        "connection.settings_dict['CONN_MAX_AGE'])"
    )
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'chat.sqlite3'}"}
    result = manage("shell", "--verbosity", "0", "-c", query, env=env)
    assert result.returncode == 0, result.stderr
    # NORMAL is 1; connections are kept, or the last one to close checkpoints the log.
    assert result.stdout.split() == ["wal", "1", "None"]


def test_spend_limits_out_of_range_are_refused_at_start_with_what_is_allowed():
    cases = {
        "CHAT_MAX_REPLY_TOKENS": ("lots", "must be a whole number of tokens, not 'lots'"),
        "CHAT_CONTEXT_TOKENS": ("0", "CHAT_CONTEXT_TOKENS must be between 1 and 10,000,000, not 0"),
        "CHAT_SIGNUP": ("maybe", "CHAT_SIGNUP must be open or closed, not 'maybe'"),
    }
    for name, (value, message) in cases.items():
        result = manage("check", env={name: value})
        assert result.returncode != 0, name
        assert message in result.stderr, result.stderr


def test_a_reply_ceiling_that_fills_the_context_window_is_refused():
    env = {"CHAT_MAX_REPLY_TOKENS": "8000", "CHAT_CONTEXT_TOKENS": "8000"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "CHAT_CONTEXT_TOKENS (8,000) must be larger than CHAT_MAX_REPLY_TOKENS" in result.stderr


def test_spend_limits_within_range_start():
    env = {"CHAT_MAX_REPLY_TOKENS": "512", "CHAT_CONTEXT_TOKENS": "8192", "CHAT_SIGNUP": "closed"}
    result = manage("check", env=env)
    assert result.returncode == 0, result.stderr
