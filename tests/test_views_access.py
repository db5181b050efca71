"""Accounts and access to the pages: every page needs a login, signing up and logging
in and out, the rooms a non-member cannot see or change (404), a shared room for its
member, authors and the admin, the API key never shown, and leaving and deleting a
room."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from chat.models import Message, Room
from tests.conftest import PASSWORD
from tests.test_views import HTMX

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/chat/999/", "/chat/999/edit/"])
def test_unknown_room_is_404(client, path):
    assert client.get(path).status_code == 404


ROOM_ROUTES = ["chat:room_detail", "chat:room_edit"]


@pytest.mark.parametrize("path", ["/", "/chat/", "/chat/new/", "/chat/1/", "/chat/docs/law/tax/"])
def test_every_page_needs_a_login(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_sign_up_logs_the_new_user_in():
    browser = Client()
    response = browser.post(
        "/accounts/signup/",
        {"username": "carol", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/chat/"
    assert browser.get("/chat/").context["user"].username == "carol"


def test_sign_up_with_mismatched_passwords_shows_the_error():
    response = Client().post(
        "/accounts/signup/",
        {"username": "carol", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )
    assert "The two password fields didn’t match." in response.content.decode()
    assert not get_user_model().objects.filter(username="carol").exists()


def test_log_in_and_out(user):
    browser = Client()
    response = browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/chat/"
    assert "Log out" in browser.get("/chat/").content.decode()
    browser.post("/accounts/logout/")
    assert browser.get("/chat/").status_code == 302


def test_new_rooms_belong_to_their_creator(client, user):
    client.post("/chat/new/", {"name": "Mine"})
    assert Room.objects.get().owner == user


def test_non_members_see_no_room_in_their_list(room_factory, as_bob):
    room_factory(name="Alice's secret room")
    assert "Alice&#x27;s secret room" not in as_bob.get("/chat/").content.decode()


@pytest.mark.parametrize("route", ROOM_ROUTES)
def test_non_members_get_404_for_a_rooms_pages(room_factory, as_bob, route):
    room = room_factory()
    assert as_bob.get(reverse(route, args=[room.pk])).status_code == 404


@pytest.mark.parametrize(
    ("route", "data"),
    [
        ("chat:room_edit", {"name": "Taken", "system_prompt": ""}),
        ("chat:room_member_add", {"username": "bob"}),
    ],
)
def test_non_members_cannot_change_a_room(room_factory, as_bob, route, data):
    room = room_factory(name="Alice's")
    assert as_bob.post(reverse(route, args=[room.pk]), data).status_code == 404
    room.refresh_from_db()
    assert (room.name, room.members.count()) == ("Alice's", 0)


def test_a_shared_room_is_listed_and_opens_for_the_member(room_factory, bob, as_bob):
    room = room_factory(name="Shared room")
    room.members.add(bob)
    assert "Shared room" in as_bob.get("/chat/").content.decode()
    html = as_bob.get(room.get_absolute_url()).content.decode()
    assert f'data-ws-connect="/ws/chat/{room.pk}/"' in html
    assert "Edit and share" not in html, "only the owner edits"


def test_messages_show_their_author(client, room_factory, message_factory, user):
    room = room_factory()
    message_factory(room, "hello", author=user)
    assert (
        '<span class="message__author">alice</span>'
        in client.get(room.get_absolute_url()).content.decode()
    )


def test_the_admin_lists_rooms_and_messages(room_factory, message_factory, user_factory):
    admin = user_factory("root", is_staff=True, is_superuser=True)
    room = room_factory(name="Audited room")
    message_factory(room, "audited message")
    browser = Client()
    browser.force_login(admin)
    assert "Audited room" in browser.get("/admin/chat/room/").content.decode()
    assert "audited message" in browser.get("/admin/chat/message/").content.decode()


def test_the_api_key_is_never_rendered(client, room_factory, settings):
    settings.OPENAI_API_KEY = "sk-secret-never-shown"
    room = room_factory()
    for path in ["/chat/", room.get_absolute_url(), reverse("chat:room_edit", args=[room.pk])]:
        assert "sk-secret-never-shown" not in client.get(path).content.decode()


def test_earlier_messages_of_someone_elses_room_are_404(room_factory, as_bob):
    room = room_factory()
    url = reverse("chat:room_messages_earlier", args=[room.pk])
    assert as_bob.get(f"{url}?before=999").status_code == 404


def test_a_member_leaves_a_room_and_it_leaves_their_list(room_factory, bob, as_bob):
    room = room_factory(name="Book club")
    room.members.add(bob)
    asked = as_bob.get(reverse("chat:room_leave", args=[room.pk])).content.decode()
    assert "Leave “Book club”?" in asked and room.members.filter(pk=bob.pk).exists()
    response = as_bob.post(reverse("chat:room_leave", args=[room.pk]))
    assert (response.status_code, response["Location"]) == (302, "/chat/")
    assert not room.members.filter(pk=bob.pk).exists()
    listing = as_bob.get("/chat/").content.decode()
    assert "You left “Book club”. These are the rooms you are in." in listing
    assert 'id="room-card-' not in listing
    assert as_bob.get(room.get_absolute_url()).status_code == 404


def test_leaving_over_htmx_redirects_the_client(room_factory, bob, as_bob):
    room = room_factory()
    room.members.add(bob)
    response = as_bob.post(reverse("chat:room_leave", args=[room.pk]), **HTMX)
    assert response["HX-Redirect"] == "/chat/"


def test_the_owner_cannot_leave_and_others_cannot_delete(client, room_factory, bob, as_bob):
    room = room_factory()
    room.members.add(bob)
    message = Message.objects.create(room=room, role="user", content="kept")
    assert client.post(reverse("chat:room_leave", args=[room.pk])).status_code == 404
    assert as_bob.post(reverse("chat:room_delete", args=[room.pk])).status_code == 404
    assert as_bob.get(reverse("chat:room_delete", args=[room.pk])).status_code == 404
    stranger = Client()
    stranger.force_login(get_user_model().objects.create_user("eve", password=PASSWORD))
    assert stranger.post(reverse("chat:room_leave", args=[room.pk])).status_code == 404
    assert stranger.post(reverse("chat:room_delete", args=[room.pk])).status_code == 404
    assert Room.objects.filter(pk=room.pk).exists() and room.members.filter(pk=bob.pk).exists()
    assert Message.objects.filter(pk=message.pk).exists()


def test_the_owner_confirms_then_deletes(client, room_factory):
    room = room_factory(name="Old project")
    Message.objects.create(room=room, role="user", content="bye")
    confirm = client.get(reverse("chat:room_delete", args=[room.pk])).content.decode()
    assert "Delete “Old project” and all its messages?" in confirm
    assert Room.objects.filter(pk=room.pk).exists(), "asking deletes nothing"
    response = client.post(reverse("chat:room_delete", args=[room.pk]))
    assert (response.status_code, response["Location"]) == (302, "/chat/")
    assert not Room.objects.filter(pk=room.pk).exists() and not Message.objects.exists()
