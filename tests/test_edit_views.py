"""The owner's *Edit and share* page (chat.edit_views): the room's settings and the
prompt change that clears its history, its members, its monthly token budget, and
each member's share in the room's usage panel."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.budget_models import Charge
from chat.forms import RoomBudgetForm

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


# The room's settings.


def test_edit_page_warns_that_a_prompt_change_clears_history(client, room_factory):
    room = room_factory()
    html = client.get(reverse("chat:room_edit", args=[room.pk])).content.decode()
    assert "Changing the system prompt deletes this room" in html


def test_prompt_change_asks_first_then_clears_history(client, room_factory, message_factory):
    room = room_factory(system_prompt="old")
    message_factory(room, "hello")
    url = reverse("chat:room_edit", args=[room.pk])
    asked = client.post(url, {"name": "Renamed", "system_prompt": "new"}, **HTMX)
    html = asked.content.decode()
    assert asked.status_code == 200 and "HX-Redirect" not in asked
    assert "Saving deletes this room's 1 message, for everyone in it." in html
    assert '<input type="hidden" name="confirm_reset" value="1">' in html
    assert re.search(r"<textarea[^>]*>\s*new</textarea>", html), "the edit is kept"
    room.refresh_from_db()
    assert (room.name, room.system_prompt, room.messages.count()) == ("Test room", "old", 1)

    response = client.post(
        url, {"name": "Renamed", "system_prompt": "new", "confirm_reset": "1"}, **HTMX
    )
    assert response["HX-Redirect"] == room.get_absolute_url()
    room.refresh_from_db()
    assert (room.name, room.system_prompt) == ("Renamed", "new")
    assert room.messages.count() == 0
    page = client.get(room.get_absolute_url()).content.decode()
    assert "1 message was deleted for everyone, and the conversation starts again." in page


def test_a_confirmation_for_fewer_messages_than_now_asks_again(
    client, room_factory, message_factory
):
    room = room_factory(system_prompt="old")
    message_factory(room, "hello")
    message_factory(room, "a second one, sent while the owner was reading")
    response = client.post(
        reverse("chat:room_edit", args=[room.pk]),
        {"name": "Room", "system_prompt": "new", "confirm_reset": "1"},
    )
    assert "Delete 2 messages and save" in response.content.decode()
    assert room.messages.count() == 2


def test_a_prompt_change_in_an_empty_room_saves_at_once(client, room_factory):
    room = room_factory(system_prompt="old")
    response = client.post(
        reverse("chat:room_edit", args=[room.pk]), {"name": "Room", "system_prompt": "new"}
    )
    assert response.status_code == 302
    room.refresh_from_db()
    assert room.system_prompt == "new"


def test_rename_alone_keeps_history(client, room_factory, message_factory):
    room = room_factory(system_prompt="same")
    message_factory(room, "hello")
    client.post(
        reverse("chat:room_edit", args=[room.pk]), {"name": "Renamed", "system_prompt": "same"}
    )
    assert room.messages.count() == 1


def test_invalid_edit_keeps_the_room_unchanged(client, room_factory, message_factory):
    room = room_factory(name="Keep", system_prompt="old")
    message_factory(room, "hello")
    response = client.post(
        reverse("chat:room_edit", args=[room.pk]), {"name": "", "system_prompt": "new"}, **HTMX
    )
    assert "This field is required." in response.content.decode()
    room.refresh_from_db()
    assert (room.name, room.system_prompt, room.messages.count()) == ("Keep", "old", 1)


def test_the_edit_form_sets_who_the_ai_answers(client, room_factory):
    room = room_factory()
    response = client.post(
        reverse("chat:room_edit", args=[room.pk]),
        {"name": room.name, "system_prompt": "", "ai_answers": "mentioned"},
    )
    assert response.status_code == 302
    room.refresh_from_db()
    assert room.ai_answers == "mentioned"
    page = client.get(reverse("chat:room_edit", args=[room.pk])).content.decode()
    assert re.search(r'<input type="radio" name="ai_answers" value="mentioned"[^>]* checked>', page)
    bad = client.post(
        reverse("chat:room_edit", args=[room.pk]),
        {"name": room.name, "system_prompt": "", "ai_answers": "sometimes"},
        **HTMX,
    )
    assert "Select a valid choice" in bad.content.decode()


def test_a_bad_spend_limit_is_shown_inline_and_nothing_is_saved(client, room_factory, settings):
    settings.CHAT_MAX_REPLY_TOKENS = 4096
    room = room_factory(name="Room")
    url = reverse("chat:room_edit", args=[room.pk])
    data = {"name": "Renamed", "system_prompt": "", "max_reply_tokens": "0"}
    response = client.post(url, data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_max_reply_tokens_error"' in html
    assert "A reply may take 1 to 4,096 tokens on this server." in html
    room.refresh_from_db()
    assert (room.name, room.max_reply_tokens) == ("Room", None)

    client.post(url, data | {"max_reply_tokens": "256", "context_tokens": "8000"})
    room.refresh_from_db()
    assert (room.name, room.max_reply_tokens, room.context_tokens) == ("Renamed", 256, 8000)


# Members.


def test_members_may_not_edit_or_share(room_factory, bob, as_bob):
    room = room_factory()
    room.members.add(bob)
    assert as_bob.get(reverse("chat:room_edit", args=[room.pk])).status_code == 403
    response = as_bob.post(reverse("chat:room_member_add", args=[room.pk]), {"username": "bob"})
    assert response.status_code == 403


def test_the_owner_shares_and_unshares_through_htmx(client, room_factory, bob):
    room = room_factory()
    response = client.post(
        reverse("chat:room_member_add", args=[room.pk]), {"username": "bob"}, **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="members"') and "bob" in html
    assert list(room.members.all()) == [bob]

    response = client.post(reverse("chat:room_member_remove", args=[room.pk, bob.pk]), **HTMX)
    assert "Only you, for now." in response.content.decode()
    assert room.members.count() == 0


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain form post"])
def test_sharing_with_an_unknown_user_says_so(client, room_factory, headers):
    room = room_factory()
    response = client.post(
        reverse("chat:room_member_add", args=[room.pk]), {"username": "nobody"}, **headers
    )
    assert response.status_code == 200
    assert "There is no user called “nobody”." in response.content.decode()
    assert room.members.count() == 0


# The token budget.


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("0", "A budget is at least 1 token; leave it empty for no budget."),
        ("-5", "A budget is at least 1 token; leave it empty for no budget."),
        ("lots", "Enter a whole number of tokens, such as 100000, or leave it empty."),
        ("1.5", "Enter a whole number of tokens, such as 100000, or leave it empty."),
        ("10000000000001", "A budget is at most 1000000000000 tokens a month."),
    ],
)
def test_the_form_refuses_what_is_not_a_sensible_budget(given, error):
    form = RoomBudgetForm(data={"monthly_token_budget": given})
    assert not form.is_valid()
    assert form.errors["monthly_token_budget"] == [error]


def test_the_form_takes_a_whole_number_or_nothing():
    form = RoomBudgetForm(data={"monthly_token_budget": " 250000 "})
    assert form.is_valid() and form.cleaned_data["monthly_token_budget"] == 250_000
    form = RoomBudgetForm(data={"monthly_token_budget": ""})
    assert form.is_valid() and form.cleaned_data["monthly_token_budget"] is None


def test_an_invalid_budget_is_shown_inline_and_nothing_is_saved(client, room_factory):
    room = room_factory(monthly_token_budget=5000)
    response = client.post(f"/chat/{room.pk}/budget/", {"monthly_token_budget": "0"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="budget"')
    assert "A budget is at least 1 token" in html
    room.refresh_from_db()
    assert room.monthly_token_budget == 5000


def test_the_owner_sets_and_clears_the_budget(client, room_factory):
    room = room_factory()
    response = client.post(f"/chat/{room.pk}/budget/", {"monthly_token_budget": "80000"}, **HTMX)
    assert 'value="80000"' in response.content.decode()
    assert "Saved." in response.content.decode()
    room.refresh_from_db()
    assert room.monthly_token_budget == 80_000
    # Without scripts: back to the edit page.
    response = client.post(f"/chat/{room.pk}/budget/", {"monthly_token_budget": ""})
    assert response.status_code == 302 and response.url == f"/chat/{room.pk}/edit/"
    room.refresh_from_db()
    assert room.monthly_token_budget is None


def test_without_scripts_an_invalid_budget_shows_the_whole_page_with_the_error(
    client, room_factory
):
    room = room_factory()
    response = client.post(f"/chat/{room.pk}/budget/", {"monthly_token_budget": "-1"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="members"' in html and "A budget is at least 1 token" in html


def test_without_scripts_an_invalid_budget_keeps_the_invite_card_whole(client, room_factory):
    room = room_factory()
    response = client.post(f"/chat/{room.pk}/budget/", {"monthly_token_budget": "lots"})
    html = response.content.decode()
    assert response.status_code == 200 and "Enter a whole number of tokens" in html
    # The invite card's form, with its fields, not an empty shell.
    assert 'id="invites"' in html and 'name="days"' in html and "Create link" in html


def test_only_the_owner_may_set_it(room_factory, user_factory):
    room = room_factory()
    member, stranger = user_factory("bob"), user_factory("carol")
    room.members.add(member)
    for someone, status in ((member, 403), (stranger, 404)):
        browser = Client()
        browser.force_login(someone)
        response = browser.post(f"/chat/{room.pk}/budget/", {"monthly_token_budget": "9"}, **HTMX)
        assert response.status_code == status
    room.refresh_from_db()
    assert room.monthly_token_budget is None


def test_the_room_shows_each_member_s_share_this_month_with_dollars(
    client, settings, user, user_factory, room_factory
):
    settings.CHAT_PRICES = {"test-model": {"prompt": 1, "completion": 2}}
    room = room_factory(monthly_token_budget=10_000)
    bob = user_factory("bob")
    room.members.add(bob)
    now = timezone.now()
    for who, prompt, completion in ((user, 1000, 500), (bob, 300, 0), (user, 100, 100)):
        Charge.objects.create(
            reply_id=1,
            user=who,
            room=room,
            model="test-model",
            prompt_tokens=prompt,
            completion_tokens=completion,
            tokens=prompt + completion,
            settled=True,
            at=now,
        )
    # Last month's does not count.
    Charge.objects.create(
        reply_id=1,
        user=bob,
        room=room,
        prompt_tokens=9000,
        completion_tokens=0,
        tokens=9000,
        at=now.replace(day=1) - timedelta(days=1),
    )
    page = client.get(room.get_absolute_url()).content.decode()
    assert "This month: 2,000 of 10,000 tokens" in page
    # alice: 1100 prompt at $1/M and 600 reply tokens at $2/M.
    assert '<span class="room-header__share">alice 1,700 ($0.0023)</span>' in page
    assert '<span class="room-header__share">bob 300 ($0.0003)</span>' in page
    edit = client.get(f"/chat/{room.pk}/edit/").content.decode()
    assert "This month the room has spent 2,000 of its 10,000 tokens." in edit
    share = '<span class="budget__share">alice 1,700 ($0.0023)</span>'
    assert f"Each person's share: {share} ·" in edit
    assert 'value="10000"' in edit
