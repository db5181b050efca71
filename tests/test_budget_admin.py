"""The admin lists what each user and each room spent today and this month, and
sets a user's own budgets."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.budget_models import Charge, UserBudget, day_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(user_factory) -> Client:
    browser = Client()
    browser.force_login(user_factory("root", is_staff=True, is_superuser=True))
    return browser


def spend(user, room, tokens, at):
    Charge.objects.create(
        reply_id=1,
        user=user,
        room=room,
        prompt_tokens=tokens,
        completion_tokens=0,
        tokens=tokens,
        settled=True,
        at=at,
    )


def cells(html: str, row_start: str) -> str:
    """The changelist row that starts with `row_start`."""
    return html[html.index(row_start) :].split("</tr>")[0]


def test_users_and_rooms_are_listed_with_today_s_and_this_month_s_tokens(
    admin_client, user, room_factory
):
    room = room_factory(name="Budgeted", monthly_token_budget=90_000)
    now = timezone.now()
    UserBudget.objects.create(user=user, tokens_per_day=5000)
    spend(user, room, 300, now)
    # Earlier this month when today is not the first, else still today.
    spend(user, room, 40, max(day_start(now) - timedelta(seconds=1), now.replace(day=1, hour=0)))
    spend(user, room, 7000, now.replace(day=1) - timedelta(days=1))

    users = admin_client.get("/admin/chat/userbudget/").content.decode()
    row = cells(users, ">alice<")
    today = 340 if now.day == 1 else 300
    assert f'<td class="field-spent_today">{today}</td>' in row
    assert '<td class="field-spent_this_month">340</td>' in row
    assert '<td class="field-tokens_per_day">5000</td>' in row

    rooms = admin_client.get("/admin/chat/room/").content.decode()
    row = cells(rooms, ">Budgeted<")
    assert f'<td class="field-spent_today">{today}</td>' in row
    assert '<td class="field-spent_this_month">340</td>' in row
    assert '<td class="field-monthly_token_budget">90000</td>' in row


def test_an_administrator_sets_a_user_unlimited(admin_client, user):
    response = admin_client.post(
        "/admin/chat/userbudget/add/",
        {"user": user.pk, "tokens_per_day": "", "tokens_per_month": "100", "unlimited": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    own = UserBudget.objects.get(user=user)
    assert (own.tokens_per_day, own.tokens_per_month, own.unlimited) == (None, 100, True)


def test_the_ledger_is_read_only(admin_client, user, room_factory):
    spend(user, room_factory(), 12, timezone.now())
    charge = Charge.objects.get()
    assert admin_client.get("/admin/chat/charge/").status_code == 200
    assert admin_client.get("/admin/chat/charge/add/").status_code == 403
    admin_client.post(f"/admin/chat/charge/{charge.pk}/change/", {"tokens": "1"})
    charge.refresh_from_db()
    assert charge.tokens == 12
