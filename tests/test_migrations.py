"""The two migration folders (SQLite's chat/migrations, PostgreSQL's
chat/migrations_pg) stay in step; tests/test_postgres.py migrates the latter."""

from importlib import import_module
from io import StringIO
from pathlib import Path

from django.core.management import call_command

import chat

# The migrations whose operations differ between the backends.
PER_BACKEND = {"0002_taxlawdocument"}


def names(folder: str) -> set[str]:
    path = Path(chat.__file__).parent / folder
    return {p.stem for p in path.glob("[0-9]*.py")}


def test_both_folders_hold_the_same_migrations():
    assert names("migrations") == names("migrations_pg")
    assert names("migrations") >= PER_BACKEND


def test_postgresql_shares_every_other_migration():
    for name in names("migrations") - PER_BACKEND:
        shared = import_module(f"chat.migrations.{name}").Migration
        assert import_module(f"chat.migrations_pg.{name}").Migration is shared, name


def test_the_models_need_no_new_migration(db):
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
