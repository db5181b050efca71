"""Search across one's rooms: the FTS5 trigram index on SQLite (tests/test_postgres.py
runs the PostgreSQL side), the rooms one may see, and input that is not a query."""

from importlib import import_module

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chat import search
from chat.models import Message

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def rooms(room_factory, message_factory, user, user_factory):
    mine = room_factory(name="Mine")
    message_factory(mine, "급여에 포함하여 지급되는 퇴직금의 소득 구분은?", author=user)
    message_factory(mine, "퇴직금은 근로소득으로 봅니다.", role="assistant")
    message_factory(mine, 'How do I quote "a phrase" AND NOT other* things?', author=user)
    bob = user_factory("bob")
    shared = room_factory(name="Bob's room", owner=bob)
    shared.members.add(user)
    message_factory(shared, "Shared answer about 퇴직금 and pensions", author=bob)
    private = room_factory(name="Private", owner=bob)
    message_factory(private, "Bob's secret 퇴직금 plan", author=bob)
    return mine, shared, private


def contents(found: search.MessageSearch) -> list[str]:
    return [hit.message.content for hit in found.hits]


def test_finds_korean_inside_words_newest_first_in_visible_rooms_only(rooms, user):
    found = search.message_search(user=user, query="퇴직금")
    assert contents(found) == [
        "Shared answer about 퇴직금 and pensions",
        "퇴직금은 근로소득으로 봅니다.",
        "급여에 포함하여 지급되는 퇴직금의 소득 구분은?",
    ]
    assert "Bob's secret" not in str(contents(found))


def test_two_characters_search_too(rooms, user):
    assert contents(search.message_search(user=user, query="소득")) == [
        "퇴직금은 근로소득으로 봅니다.",
        "급여에 포함하여 지급되는 퇴직금의 소득 구분은?",
    ]


def test_one_korean_syllable_searches(rooms, user):
    found = search.message_search(user=user, query="봅")
    assert contents(found) == ["퇴직금은 근로소득으로 봅니다."]
    assert len(contents(search.message_search(user=user, query="금"))) == 3


@pytest.mark.parametrize("query", ["", " ", "a", "?"])
def test_an_empty_or_one_ascii_character_query_runs_no_search(
    rooms, user, query, django_assert_num_queries
):
    with django_assert_num_queries(0):
        found = search.message_search(user=user, query=query)
    assert found.too_short and found.hits == []


QUOTED = 'How do I quote "a phrase" AND NOT other* things?'


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ('"a phrase"', [QUOTED]),
        ("AND NOT", [QUOTED]),
        ("other*", [QUOTED]),
        ('quote "a', [QUOTED]),
        ('""', []),
        ("NEAR(a b)", []),
        ("content:x", []),
        ("^* OR -", []),
    ],
)
def test_fts_syntax_and_quotes_are_plain_text(rooms, user, query, found):
    assert contents(search.message_search(user=user, query=query)) == found


def test_case_and_spacing_are_ignored(rooms, user):
    assert contents(search.message_search(user=user, query="  how   DO i ")) == [
        'How do I quote "a phrase" AND NOT other* things?'
    ]


def test_the_index_follows_edits_and_deletes(rooms, user):
    mine = rooms[0]
    message = mine.messages.get(content__startswith="급여")
    message.content = "연말정산 환급은 언제?"
    message.save()
    assert contents(search.message_search(user=user, query="연말정산")) == ["연말정산 환급은 언제?"]
    assert "급여" not in str(contents(search.message_search(user=user, query="급여에")))
    mine.delete()
    assert contents(search.message_search(user=user, query="퇴직금")) == [
        "Shared answer about 퇴직금 and pensions"
    ]


def test_the_fts_index_is_what_answers_on_sqlite(rooms, user):
    assert connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_message_fts WHERE content MATCH '\"퇴직금\"'")
        assert cursor.fetchone() == (4,)  # every room's; the search then keeps the visible ones


def test_a_streaming_reply_is_not_a_result(room_factory, message_factory, user):
    room = room_factory()
    message_factory(room, "half a thought", role="assistant", status="streaming")
    assert search.message_search(user=user, query="thought").hits == []


def indexed() -> list[int]:
    """The ids of the messages in the FTS5 index (one docsize row each)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM chat_message_fts_docsize ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_a_reply_is_indexed_once_final_not_on_every_save(room_factory, message_factory, user):
    room = room_factory()
    reply = message_factory(room, "", role="assistant", status="streaming")
    for text in ("Retire", "Retirement pay", "Retirement pay is wages"):
        reply.content = text
        reply.save()
        assert indexed() == []
    reply.status = Message.Status.COMPLETE
    reply.save()
    assert indexed() == [reply.pk]
    assert contents(search.message_search(user=user, query="is wages")) == [reply.content]
    # Regenerated: out of the index with the text it was indexed with, back in once final.
    reply.content, reply.status = "", Message.Status.STREAMING
    reply.save()
    assert indexed() == [] and search.message_search(user=user, query="wages").hits == []
    reply.content, reply.status = "Severance is income", Message.Status.STOPPED
    reply.save()
    assert contents(search.message_search(user=user, query="severance")) == [reply.content]
    assert search.message_search(user=user, query="wages").hits == []
    reply.delete()
    assert indexed() == []


def test_saving_a_final_message_unchanged_keeps_one_index_entry(room_factory, message_factory):
    message = message_factory(room_factory(), "퇴직금 question")
    message.save()
    message.save(update_fields=["status"])
    assert indexed() == [message.pk]


@pytest.mark.django_db(transaction=True)
def test_the_migration_leaves_only_final_messages_in_the_index(user):
    # The migration just before it has the old triggers; rows are written with the
    # models as they were then. The database goes forward again whatever happens,
    # or every later test would meet the old schema.
    before = import_module("chat.migrations.0009_search_index_final_only").Migration
    target = before.dependencies[0][1]
    call_command("migrate", "chat", target, verbosity=0)
    try:
        then = MigrationExecutor(connection).loader.project_state(("chat", target)).apps
        old_room, old_message = then.get_model("chat", "Room"), then.get_model("chat", "Message")
        room = old_room.objects.create(name="Test room", owner_id=user.pk)
        final = old_message.objects.create(room=room, role="user", content="final words")
        streaming = old_message.objects.create(
            room=room, role="assistant", status="streaming", content="half a thought"
        )
        assert indexed() == [final.pk, streaming.pk]  # the old triggers indexed every save
    finally:
        call_command("migrate", "chat", verbosity=0)
    assert indexed() == [final.pk]
    saved = Message.objects.get(pk=streaming.pk)
    saved.content, saved.status = "a whole thought", Message.Status.COMPLETE
    saved.save()
    assert indexed() == [final.pk, streaming.pk]


def test_snippets_escape_the_text_and_mark_the_match():
    text = "x" * 100 + " <b>퇴직금</b> & more " + "y" * 100
    snippet = search.snippet(text, "퇴직금", context=10)
    assert snippet == "…xxxxxx &lt;b&gt;<mark>퇴직금</mark>&lt;/b&gt; &amp; mor…"
    assert search.snippet("Hello World", "world") == "Hello <mark>World</mark>"


def test_snippets_drop_markdown_emphasis_unless_it_is_searched_for():
    assert search.snippet("Bring your **receipt** and `card`", "receipt") == (
        "Bring your <mark>receipt</mark> and card"
    )
    assert search.snippet("a `code` span", "`code`") == "a <mark>`code`</mark> span"


def test_the_page_shows_room_author_and_highlighted_snippet_linking_in_place(client, rooms):
    response = client.get("/chat/search/?q=pensions")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    shared_message = Message.objects.get(content__contains="pensions")
    link = (
        f"/chat/{shared_message.room_id}/?message={shared_message.pk}#message-{shared_message.pk}"
    )
    assert f'href="{link}"' in html
    assert "Bob&#x27;s room" in html and "bob" in html
    assert "Shared answer about 퇴직금 and <mark>pensions</mark>" in html


def test_typing_swaps_only_the_results(client, rooms):
    html = client.get("/chat/search/?q=퇴직금", **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="results"') and "<html" not in html
    assert html.count('class="hit card"') == 3


def test_the_page_gives_a_hint_for_short_queries_and_says_when_nothing_matches(client, rooms):
    assert "Type at least two letters" in client.get("/chat/search/?q=a").content.decode()
    assert "Type at least two letters" in client.get("/chat/search/").content.decode()
    html = client.get("/chat/search/?q=봅", **HTMX).content.decode()
    assert "<mark>봅</mark>" in html
    html = client.get('/chat/search/?q="nothing like this', **HTMX).content.decode()
    assert "No message matches “&quot;nothing like this”." in html


def test_someone_with_no_rooms_finds_nothing(client, rooms, user_factory):
    client.force_login(user_factory("carol"))
    html = client.get("/chat/search/?q=퇴직금", **HTMX).content.decode()
    assert 'class="hit card"' not in html and "No message matches" in html


def test_a_search_result_opens_the_room_at_the_message_highlighted(
    client, room_factory, message_factory, settings
):
    settings.CHAT_PAGE_SIZE = 5
    room = room_factory()
    old = [message_factory(room, f"message {i}") for i in range(30)]
    html = client.get(f"/chat/{room.pk}/?message={old[3].pk}").content.decode()
    assert (
        f'id="message-{old[3].pk}" class="message message--user message--complete message--found"'
        in html
    )
    # Everything from the start (fewer than five before it) to the newest.
    assert [m.pk for m in old if f'id="message-{m.pk}"' in html] == [m.pk for m in old]
    assert "Show earlier messages" not in html


def test_an_old_message_far_down_shows_the_earlier_button(
    client, room_factory, message_factory, settings
):
    settings.CHAT_PAGE_SIZE = 5
    room = room_factory()
    old = [message_factory(room, f"message {i}") for i in range(30)]
    html = client.get(f"/chat/{room.pk}/?message={old[20].pk}").content.decode()
    shown = [m.pk for m in old if f'id="message-{m.pk}"' in html]
    assert shown == [m.pk for m in old[15:]]
    assert f"?before={old[15].pk}" in html


@pytest.mark.parametrize("message", ["999999", "abc", "-1", ""])
def test_an_unknown_message_opens_the_room_as_usual(client, room_factory, message_factory, message):
    room = room_factory()
    message_factory(room, "hello")
    response = client.get(f"/chat/{room.pk}/?message={message}")
    assert response.status_code == 200 and "message--found" not in response.content.decode()


def test_another_room_s_message_is_not_opened_in_this_one(client, rooms, room_factory):
    private_message = rooms[2].messages.get()
    room = room_factory()
    html = client.get(f"/chat/{room.pk}/?message={private_message.pk}").content.decode()
    assert "secret" not in html and "message--found" not in html
