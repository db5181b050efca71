"""Mentions: who a message names, how every reader sees it, and the room list's count."""

import pytest
from django.utils import timezone

from chat import mentions, selectors, services
from chat.models import Mention, Room
from chat.turns import claims, rewrites

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(user_factory):
    return {name: user_factory(name) for name in ("bob", "carol", "dave")}


@pytest.fixture
def room(room_factory, people):
    # People talk among themselves: no reply is started by what they say.
    room = room_factory(ai_answers=Room.AiAnswers.MENTIONED)
    room.members.add(people["bob"], people["carol"])
    return room


def say(room, author, content):
    _room, message, _reply = claims.claim(
        room_id=room.pk, author_id=author.pk, content=content, may_start=True, client_id=None
    )
    return message


def mentioned(message) -> set[str]:
    return set(Mention.objects.filter(message=message).values_list("user__username", flat=True))


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("@bob look", {"bob"}),
        ("thanks, @bob.", {"bob"}),
        ("@bob,@carol: hi", {"bob", "carol"}),
        ("write to bob@example.com", set()),
        ("@ai what do you think, @Bob?", {"Bob"}),
        ("@min.ji and @이민지 too", {"min.ji", "이민지"}),
        ("an @ alone", set()),
    ],
)
def test_names_are_read_from_the_text(content, names):
    assert mentions.mention_candidates(content=content) == names


def test_only_members_other_than_the_author_are_mentioned(room, user, people):
    message = say(room, user, "@bob and @carol, ask @dave and @nobody; @alice is me")
    # The owner (alice) is a member too, but not of her own message; dave is not in the room.
    assert mentioned(message) == {"bob", "carol"}
    assert mentioned(say(room, people["bob"], "@alice?")) == {"alice"}


def test_a_mention_shows_the_same_for_every_reader_and_a_stranger_stays_plain(
    room, user, people, client
):
    say(room, user, "<b>@bob</b> meet @dave\nthen @bob again")
    html = client.get(room.get_absolute_url()).content.decode()
    assert (
        '&lt;b&gt;<span class="mention" data-mention="bob">@bob</span>&lt;/b&gt; meet @dave<br>'
        'then <span class="mention" data-mention="bob">@bob</span> again'
    ) in html
    client.force_login(people["bob"])
    assert '<span class="mention" data-mention="bob">@bob</span>&lt;/b&gt;' in (
        client.get(room.get_absolute_url()).content.decode()
    )


def test_a_message_without_a_name_costs_no_query(room, user, django_assert_num_queries):
    message = say(room, user, "plain text, @ai and all\nsecond line")
    with django_assert_num_queries(0):
        html = mentions.mention_html(message=message)
    assert html == "plain text, @ai and all<br>second line"


def test_an_edit_changes_who_is_mentioned(room, user):
    message = say(room, user, "@bob hi")
    rewrites.edit(room_id=room.pk, user_id=user.pk, message_id=message.pk, content="@carol hi")
    assert mentioned(message) == {"carol"}


def test_the_room_list_counts_mentions_apart_from_unread_until_the_room_is_read(room, user, people):
    bob = people["bob"]
    services.room_read_mark(room_id=room.pk, user_id=bob.pk)
    say(room, user, "@bob one")
    say(room, user, "nothing for bob")
    say(room, people["carol"], "@bob @bob two")
    listed = selectors.room_list(user=bob).get(pk=room.pk)
    assert (listed.unread, listed.mentions) == (3, 2)
    assert selectors.room_list(user=people["carol"]).get(pk=room.pk).mentions == 0
    services.room_read_mark(room_id=room.pk, user_id=bob.pk)
    listed = selectors.room_list(user=bob).get(pk=room.pk)
    assert (listed.unread, listed.mentions) == (0, 0)
    # Still shown as a mention: the rows stay, only the count is read.
    assert Mention.objects.filter(user=bob).count() == 2


def test_a_room_never_opened_counts_every_mention(room, user, people):
    say(room, user, "@carol look")
    assert selectors.room_list(user=people["carol"]).get(pk=room.pk).mentions == 1


def test_the_room_list_page_shows_the_mention_badge(room, user, people, client):
    say(room, user, "@bob one")
    say(room, user, "@bob two")
    client.force_login(people["bob"])
    html = client.get("/chat/").content.decode()
    assert '<span class="room-card__mentions">@ 2 mentions</span>' in html
    assert "2 unread" in html


def test_the_composer_offers_the_room_s_other_people(room, user, client):
    html = client.get(room.get_absolute_url()).content.decode()
    assert 'data-members="bob carol"' in html
    assert f'data-me="{user.get_username()}"' in html


def test_a_queued_question_keeps_its_mention_when_it_is_answered(room_factory, user, people):
    room = room_factory()
    room.members.add(people["bob"])
    say(room, user, "first question")  # its reply streams: the next one waits
    queued = say(room, user, "@bob what about this?")
    assert mentioned(queued) == {"bob"}
    room.messages.filter(role="assistant").update(status="complete", updated_at=timezone.now())
    _room, reply = claims.claim_next(room_id=room.pk)
    question = room.messages.filter(pk__lt=reply.pk).last()
    assert question.content == "@bob what about this?"
    assert mentioned(question) == {"bob"}
