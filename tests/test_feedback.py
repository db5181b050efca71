"""Feedback on the AI's replies: given and changed per reader, refused with nothing
saved when it is not for a finished reply of the reader's room, in the JSON export,
and listed in the admin by rating."""

import json

import pytest
from django.test import Client

from chat.models import Feedback, Message

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def reply(room_factory, message_factory, user) -> Message:
    room = room_factory(name="Helpful?")
    message_factory(room, "Question", author=user)
    return message_factory(room, "Answer", role="assistant")


def url(message: Message) -> str:
    return f"/chat/{message.room_id}/messages/{message.pk}/feedback/"


def test_a_reader_rates_a_reply_and_changes_their_mind(client, reply, user):
    response = client.post(url(reply), {"rating": "up", "comment": ""}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith(f'<form id="feedback-{reply.pk}"')
    assert 'value="up" class="button button--quiet" aria-pressed="true"' in html
    assert "Thank you: your feedback was saved." in html
    client.post(url(reply), {"rating": "down", "comment": "  Wrong year.  "}, **HTMX)
    assert list(Feedback.objects.values_list("user", "rating", "comment")) == [
        (user.pk, "down", "Wrong year.")
    ]
    # The page shows the reader their own feedback.
    page = client.get(f"/chat/{reply.room_id}/").content.decode()
    assert 'value="down" class="button button--quiet" aria-pressed="true"' in page
    assert ">Wrong year.</textarea>" in page


def test_feedback_is_per_reader(client, reply, user_factory):
    bob = user_factory("bob")
    reply.room.members.add(bob)
    other = Client()
    other.force_login(bob)
    client.post(url(reply), {"rating": "up"}, **HTMX)
    other.post(url(reply), {"rating": "down", "comment": "Too long"}, **HTMX)
    assert sorted(Feedback.objects.values_list("user__username", "rating")) == [
        ("alice", "up"),
        ("bob", "down"),
    ]
    # Each reader's page shows their own.
    page = other.get(f"/chat/{reply.room_id}/").content.decode()
    assert 'value="down" class="button button--quiet" aria-pressed="true"' in page
    assert 'value="up" class="button button--quiet" aria-pressed="false"' in page


def test_bad_feedback_is_refused_with_nothing_saved(client, reply, message_factory):
    response = client.post(url(reply), {"rating": "meh"}, **HTMX)
    assert "Select a valid choice." in response.content.decode()
    assert client.post(url(reply), {"rating": "meh"}).status_code == 400
    question = reply.room.messages.get(role="user")
    response = client.post(url(question), {"rating": "up"}, **HTMX)
    assert "Only the AI&#x27;s finished replies take feedback." in response.content.decode()
    streaming = message_factory(reply.room, "Half", role="assistant", status="streaming")
    response = client.post(url(streaming), {"rating": "up"}, **HTMX)
    assert "Only the AI&#x27;s finished replies take feedback." in response.content.decode()
    assert not Feedback.objects.exists()


def test_someone_outside_the_room_cannot_give_feedback(reply, user_factory, room_factory):
    mallory = user_factory("mallory")
    stranger = Client()
    stranger.force_login(mallory)
    assert stranger.post(url(reply), {"rating": "down"}, **HTMX).status_code == 404
    # Nor through a room of their own, which does not hold that reply.
    own = room_factory(name="Mine", owner=mallory)
    path = f"/chat/{own.pk}/messages/{reply.pk}/feedback/"
    response = stranger.post(path, {"rating": "down"}, **HTMX)
    assert "Only the AI&#x27;s finished replies take feedback." in response.content.decode()
    assert not Feedback.objects.exists()


def test_the_json_export_holds_each_reply_s_feedback(client, reply, user):
    Feedback.objects.create(message=reply, user=user, rating="down", comment="Outdated")
    data = json.loads(client.get(f"/chat/{reply.room_id}/export/?format=json").content)
    question, answer = data["messages"]
    assert "feedback" not in question
    assert answer["feedback"] == [{"user": "alice", "rating": "down", "comment": "Outdated"}]


def test_the_admin_lists_replies_with_negative_feedback(reply, user, user_factory, message_factory):
    liked = message_factory(reply.room, "Liked answer", role="assistant")
    Feedback.objects.create(message=reply, user=user, rating="down")
    Feedback.objects.create(message=liked, user=user, rating="up")
    admin = Client()
    admin.force_login(user_factory("root", is_staff=True, is_superuser=True))
    listing = admin.get("/admin/chat/message/?feedback=down")
    assert listing.status_code == 200
    shown = listing.context["cl"].result_list
    assert list(shown) == [reply]
    assert "Not helpful" in listing.content.decode()
    assert admin.get(f"/admin/chat/message/{reply.pk}/change/").status_code == 200
    assert admin.get("/admin/chat/feedback/").status_code == 200
