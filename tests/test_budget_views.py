"""The room's monthly token budget in *Edit and share*, and each member's share in the
room's usage panel."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.budget_models import Charge
from chat.budget_views import RoomBudgetForm

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


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
    assert "This month: 2000 of 10000 tokens" in page
    # alice: 1100 prompt at $1/M and 600 reply tokens at $2/M.
    assert '<span class="room-header__share">alice 1700 ($0.0023)</span>' in page
    assert '<span class="room-header__share">bob 300 ($0.0003)</span>' in page
    edit = client.get(f"/chat/{room.pk}/edit/").content.decode()
    assert "This month the room has spent 2000 of its 10000 tokens." in edit
    assert 'value="10000"' in edit
