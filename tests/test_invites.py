"""Invite links: made and revoked in Edit and share, opened signed in or signed out."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat import invites
from chat.models import Invite, Room
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def room(room_factory) -> Room:
    return room_factory(name="Book club")


@pytest.fixture
def bob(user_factory):
    return user_factory("bob")


def signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def link(invite: Invite) -> str:
    return reverse("chat:invite_open", kwargs={"token": invites.invite_token(invite=invite)})


def test_the_owner_creates_a_link_with_the_default_expiry_and_sees_it(client, room, settings):
    settings.CHAT_INVITE_DAYS = 3
    page = client.get(f"/chat/{room.pk}/edit/").content.decode()
    assert "Invite links" in page and 'value="3"' in page
    response = client.post(
        f"/chat/{room.pk}/invites/", {"days": "3", "max_uses": "2", "allows_signup": "on"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    invite = Invite.objects.get()
    assert invite.room == room and invite.max_uses == 2 and invite.allows_signup
    expected = timezone.now() + datetime.timedelta(days=3)
    assert abs(invite.expires_at - expected) < datetime.timedelta(minutes=1)
    assert f"http://testserver{link(invite)}" in html
    assert "used 0 of 2" in html
    # The token is the key, signed: the key alone is not a link.
    assert invite.key in link(invite) and link(invite) != f"/chat/invite/{invite.key}/"


def test_a_link_with_bad_settings_is_not_created(client, room):
    response = client.post(f"/chat/{room.pk}/invites/", {"days": "0", "max_uses": "-1"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ensure this value is greater than or equal to 1." in html
    assert not Invite.objects.exists()


def test_only_the_owner_makes_or_revokes_links(room, bob, user):
    room.members.add(bob)
    invite = invites.invite_create(room=room, created_by=user)
    member = signed_in(bob)
    assert member.post(f"/chat/{room.pk}/invites/", {"days": "7"}, **HTMX).status_code == 403
    revoke = f"/chat/{room.pk}/invites/{invite.pk}/revoke/"
    assert member.post(revoke, **HTMX).status_code == 403
    assert Invite.objects.count() == 1 and Invite.objects.get().revoked_at is None


def test_a_link_makes_the_signed_in_opener_a_member_and_opens_the_room(room, bob, user):
    invite = invites.invite_create(room=room, created_by=user)
    response = signed_in(bob).get(link(invite))
    assert response.status_code == 302 and response["Location"] == f"/chat/{room.pk}/"
    assert room.members.filter(pk=bob.pk).exists()
    invite.refresh_from_db()
    assert invite.uses == 1


def test_a_member_or_the_owner_opening_a_link_uses_nothing(client, room, bob, user):
    room.members.add(bob)
    invite = invites.invite_create(room=room, created_by=user, max_uses=1)
    for browser in (client, signed_in(bob)):
        response = browser.get(link(invite))
        assert response.status_code == 302 and response["Location"] == f"/chat/{room.pk}/"
    invite.refresh_from_db()
    assert invite.uses == 0


def test_a_revoked_link_lets_nobody_in(client, room, bob, user):
    invite = invites.invite_create(room=room, created_by=user)
    response = client.post(f"/chat/{room.pk}/invites/{invite.pk}/revoke/", **HTMX)
    assert response.status_code == 200 and "No active links." in response.content.decode()
    response = signed_in(bob).get(link(invite))
    assert response.status_code == 410
    assert "This invite link was revoked by the room" in response.content.decode()
    assert not room.members.exists()


def test_an_expired_link_lets_nobody_in(room, bob, user):
    invite = invites.invite_create(room=room, created_by=user)
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now())
    response = signed_in(bob).get(link(invite))
    assert response.status_code == 410
    assert "This invite link has expired." in response.content.decode()
    assert not room.members.exists()


def test_a_tampered_link_lets_nobody_in_in_either_language(room, bob, user):
    invite = invites.invite_create(room=room, created_by=user)
    token = invites.invite_token(invite=invite)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    browser = signed_in(bob)
    response = browser.get(f"/chat/invite/{forged}/")
    assert response.status_code == 400
    assert "This invite link is not valid" in response.content.decode()
    # The key alone, unsigned, is no link either.
    assert browser.get(f"/chat/invite/{invite.key}/").status_code == 400
    korean = browser.get(f"/chat/invite/{forged}/", HTTP_ACCEPT_LANGUAGE="ko")
    assert korean.status_code == 400
    assert "초대 링크가 올바르지 않습니다" in korean.content.decode()
    assert not room.members.exists()
    invite.refresh_from_db()
    assert invite.uses == 0


def test_a_link_to_a_deleted_room_says_so(room, bob, user):
    invite = invites.invite_create(room=room, created_by=user)
    url = link(invite)
    room.delete()
    response = signed_in(bob).get(url)
    assert response.status_code == 404
    assert "room no longer exists" in response.content.decode()


def test_a_use_beyond_the_limit_is_refused_and_counted_once(room, bob, user_factory, user):
    invite = invites.invite_create(room=room, created_by=user, max_uses=1)
    assert signed_in(bob).get(link(invite)).status_code == 302
    carol = user_factory("carol")
    response = signed_in(carol).get(link(invite))
    assert response.status_code == 410
    assert "used as many times as it allows" in response.content.decode()
    assert list(room.members.all()) == [bob]
    invite.refresh_from_db()
    assert invite.uses == 1
    # A used-up link is no longer listed as active.
    assert not invites.invite_active_list(room=room).exists()


def test_a_use_counted_elsewhere_first_is_refused(room, bob, user):
    """The count is one conditional UPDATE: a use that lands between the check and
    the count (another process) leaves this one refused, with nothing changed."""
    invite = invites.invite_create(room=room, created_by=user, max_uses=1)
    token = invites.invite_token(invite=invite)
    checked = invites.invite_check(token=token)
    Invite.objects.filter(pk=invite.pk).update(uses=1)
    with pytest.raises(invites.UsedUp):
        invites.invite_accept(token=token, user=bob)
    assert checked.uses == 0 and not room.members.exists()


def test_signed_out_the_link_goes_through_log_in_then_lands_in_the_room(room, bob, user):
    invite = invites.invite_create(room=room, created_by=user)
    browser = Client()
    page = browser.get(link(invite))
    html = page.content.decode()
    assert page.status_code == 200 and "Book club" in html
    assert "/accounts/login/?next=/chat/invite/" in html
    response = browser.post(
        "/accounts/login/", {"username": "bob", "password": PASSWORD, "next": link(invite)}
    )
    assert response.status_code == 302 and response["Location"] == link(invite)
    response = browser.get(link(invite))
    assert response["Location"] == f"/chat/{room.pk}/"
    assert room.members.filter(pk=bob.pk).exists()


def test_signed_out_the_link_goes_through_sign_up_even_when_it_is_closed(room, user, settings):
    settings.CHAT_SIGNUP = "closed"
    invite = invites.invite_create(room=room, created_by=user, allows_signup=True)
    browser = Client()
    assert 'href="/accounts/signup/"' in browser.get(link(invite)).content.decode()
    response = browser.post(
        "/accounts/signup/", {"username": "dora", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == f"/chat/{room.pk}/"
    dora = get_user_model().objects.get(username="dora")
    assert room.members.filter(pk=dora.pk).exists()
    assert browser.get(f"/chat/{room.pk}/").status_code == 200


def test_while_sign_up_is_closed_a_one_use_link_makes_one_account(room, user, settings):
    settings.CHAT_SIGNUP = "closed"
    invite = invites.invite_create(room=room, created_by=user, allows_signup=True, max_uses=1)
    first, second = Client(), Client()
    for browser in (first, second):
        browser.get(link(invite))
    response = first.post(
        "/accounts/signup/", {"username": "dora", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response["Location"] == f"/chat/{room.pk}/"
    # The link is used up: the other visitor, and dora's session again, make nothing.
    for browser, name in ((second, "fred"), (first, "gina")):
        response = browser.post(
            "/accounts/signup/", {"username": name, "password1": PASSWORD, "password2": PASSWORD}
        )
        assert response.status_code == 403
    assert not get_user_model().objects.filter(username__in=["fred", "gina"]).exists()
    invite.refresh_from_db()
    assert invite.uses == 1 and room.members.count() == 1


def test_a_link_without_sign_up_leaves_closed_sign_up_closed(room, user, settings):
    settings.CHAT_SIGNUP = "closed"
    invite = invites.invite_create(room=room, created_by=user)
    browser = Client()
    assert 'href="/accounts/signup/"' not in browser.get(link(invite)).content.decode()
    page = browser.get("/accounts/signup/")
    assert "accounts come from its administrator" in page.content.decode()
    response = browser.post(
        "/accounts/signup/", {"username": "eve", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="eve").exists()
    assert not room.members.exists()


def test_the_admin_lists_invite_links_and_makes_none(room, user, user_factory):
    invite = invites.invite_create(room=room, created_by=user, max_uses=3)
    admin = signed_in(user_factory("root", is_staff=True, is_superuser=True))
    assert "Book club" in admin.get("/admin/chat/invite/").content.decode()
    assert admin.get(f"/admin/chat/invite/{invite.pk}/change/").status_code == 200
    assert admin.get("/admin/chat/invite/add/").status_code == 403
