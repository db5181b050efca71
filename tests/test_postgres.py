"""The documents on a real PostgreSQL with pgvector: a fresh database migrates in
one go, loads the sample into a halfvec(3072) column with an HNSW index, and
answers vector, hybrid and keyword searches; and two claims racing for the last
of one person's budget take it once.

The server comes from tests/pgembed.py. Without a Python 3.12 these tests skip,
saying why, except under CI (the CI variable set), where they fail instead.
"""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import TAXLAW_SAMPLE
from tests.fakeopenai import FakeOpenAI
from tests.pgembed import PgEmbedServer, Unavailable
from tests.servers import ROOT

pytestmark = pytest.mark.integration

RETIREMENT = "소득46011-364"  # 급여에 포함하여 지급되는 퇴직금의 소득세법상 소득구분
QUESTION = "급여에 포함하여 지급되는 퇴직금의 소득 구분은?"
SAME_AS_RETIREMENT = "an embedding equal to the retirement document's"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgEmbedServer]:
    try:
        server = PgEmbedServer().start()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests must run under CI: {exc}")
        pytest.skip(f"no PostgreSQL with pgvector: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_env(pg_server: PgEmbedServer, model_server: FakeOpenAI) -> dict[str, str]:
    """A fresh database, migrated in one go by `manage.py migrate`."""
    database = f"test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    env = {
        "DATABASE_URL": pg_server.url(database),
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": model_server.base_url,
    }
    django(env, "manage.py", "migrate", "--noinput")
    return env


@pytest.fixture(scope="module")
def probe(pg_env: dict[str, str], model_server: FakeOpenAI) -> dict:
    """What tests/pgprobe.py found after loading the sample."""
    if not TAXLAW_SAMPLE.exists():
        pytest.skip(f"the tax-law sample is not at {TAXLAW_SAMPLE}; set TAXLAW_SAMPLE to it")
    with TAXLAW_SAMPLE.open() as sample:
        rows = [json.loads(line) for line in sample]
    retirement = next(r for r in rows if RETIREMENT in r["page_content"])
    model_server.set_embedding(SAME_AS_RETIREMENT, retirement["embedding"])
    output = django(pg_env, "-m", "tests.pgprobe", str(TAXLAW_SAMPLE), SAME_AS_RETIREMENT, QUESTION)
    return json.loads(output)


def django(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_fresh_database_migrates_in_one_go_and_matches_the_models(pg_env):
    output = django(pg_env, "manage.py", "makemigrations", "--check", "--dry-run")
    assert "No changes detected" in output


def test_embeddings_are_stored_as_halfvec_under_an_hnsw_index(probe):
    assert probe["count"] == 10
    assert probe["column"] == "halfvec(3072)"
    assert "chat_taxlawdoc_idx" in probe["plan"]


def test_knn_finds_the_document_with_the_same_embedding(probe):
    (number, distance), *rest = probe[SAME_AS_RETIREMENT]["knn"]
    assert number == RETIREMENT
    # halfvec stores 16-bit floats: the same vector is at distance ~0.
    assert distance == pytest.approx(0, abs=1e-3)
    assert all(d > 0.1 for _, d in rest)


def test_hybrid_search_puts_the_answer_first(probe):
    assert probe[QUESTION]["hybrid"][0] == RETIREMENT
    assert probe[SAME_AS_RETIREMENT]["hybrid"][0] == RETIREMENT


def test_without_a_model_postgresql_searches_by_keywords(probe):
    assert probe["keyword_only"]["flag"] is True
    assert probe["keyword_only"]["found"][0] == RETIREMENT


def test_two_claims_by_one_person_take_the_last_of_a_budget_once(pg_env):
    """budgets.budget_check locks the person's budget row: the second claim waits for
    the first's commit, sees its reservation, and is refused (without the lock it
    would read the sum before the first's commit, and both would reserve)."""
    found = json.loads(django(pg_env, "-m", "tests.pgbudget_probe"))
    assert (found["first"], found["second"], found["charges"]) == (
        "reserved",
        "refused: 40 left",
        1,
    )


VERSIONS = """
from django.contrib.auth.models import User
from chat.broadcast import room_version_bump
from chat.models import Message, Room
room = Room.objects.create(owner=User.objects.create_user("versions"), name="versions")
message = Message.objects.create(room=room, role="user", content="hello")
bumped = [
    room_version_bump(room_id=room.pk, message_ids=[message.pk]),
    room_version_bump(room_id=room.pk, message_ids=[], reset=True),
    room_version_bump(room_id=room.pk, message_ids=[]),
]
room.refresh_from_db()
message.refresh_from_db()
print(bumped, room.version, room.reset_version, message.version)
"""


def test_a_room_s_version_is_bumped_and_read_in_one_statement_on_postgresql(pg_env):
    """chat.broadcast.room_version_bump's UPDATE ... RETURNING, with and without a reset."""
    output = django(pg_env, "manage.py", "shell", "-c", VERSIONS)
    assert output.split("\n")[-2] == "[1, 2, 3] 3 2 1"
