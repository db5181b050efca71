"""New since you left: the read a visit counts from, and the divider it places."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import unread
from chat.models import Room, RoomRead

pytestmark = pytest.mark.django_db

DIVIDER = '<p id="since-divider" class="since-divider" role="separator">'


@pytest.fixture
def bob(user_factory):
    return user_factory("bob")


@pytest.fixture
def room(room_factory, bob):
    room = room_factory()
    room.members.add(bob)
    return room


def article_after_divider(html: str) -> int | None:
    found = re.search(re.escape(DIVIDER) + r'.*?</p>\s*<article id="message-(\d+)"', html, re.S)
    return int(found[1]) if found else None


def test_opening_the_room_keeps_the_read_before_it(room, bob):
    assert unread.room_open_mark(room_id=room.pk, user_id=bob.pk) is None
    first = RoomRead.objects.get(room=room, user=bob).read_at
    # One statement: every page open pays for it.
    with CaptureQueriesContext(connection) as queries:
        assert unread.room_open_mark(room_id=room.pk, user_id=bob.pk) == first
    assert len(queries) == 1
    read = RoomRead.objects.get(room=room, user=bob)
    assert read.since == first and read.read_at > first
    assert unread.room_since(room_id=room.pk, user_id=bob.pk) == first


@pytest.mark.django_db(transaction=True)
def test_opening_a_room_just_deleted_marks_nothing(room, bob):
    room_id = room.pk
    Room.objects.filter(pk=room_id).delete()
    assert unread.room_open_mark(room_id=room_id, user_id=bob.pk) is None
    assert not RoomRead.objects.exists()


def test_the_divider_stands_before_the_first_message_since_the_last_visit(
    room, user, bob, client, message_factory
):
    message_factory(room, "before", author=user)
    client.force_login(bob)
    assert DIVIDER not in client.get(room.get_absolute_url()).content.decode()
    message_factory(room, "mine, not news", author=bob)
    news = message_factory(room, "news", author=user)
    message_factory(room, "an answer", role="assistant")
    html = client.get(room.get_absolute_url()).content.decode()
    assert article_after_divider(html) == news.pk
    assert html.count(DIVIDER) == 1
    assert "New since you left" in html
    # The visit read it all: the next one has nothing new.
    assert DIVIDER not in client.get(room.get_absolute_url()).content.decode()


def test_the_divider_is_in_korean_for_a_korean_reader(room, user, bob, client, message_factory):
    client.force_login(bob)
    client.get(room.get_absolute_url())
    message_factory(room, "news", author=user)
    html = client.get(room.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "자리를 비운 사이 새 메시지" in html


def test_news_older_than_the_newest_page_opens_the_room_at_it(
    room, user, bob, client, message_factory, settings
):
    settings.CHAT_PAGE_SIZE = 3
    RoomRead.objects.create(room=room, user=bob, read_at=timezone.now())
    news = [message_factory(room, f"news {i}", author=user) for i in range(6)]
    client.force_login(bob)
    html = client.get(room.get_absolute_url()).content.decode()
    assert article_after_divider(html) == news[0].pk
    assert all(f'id="message-{m.pk}"' in html for m in news)
