"""Sign-up follows CHAT_SIGNUP: open to anyone, or closed (accounts from the administrator)."""

import sqlite3

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.fakeopenai import FakeOpenAI
from tests.live import browser_session, post_form, running_stack

PASSWORD = "correct-horse-battery-9"
CLOSED_EN = "Sign-up is closed on this server: accounts come from its administrator."
CLOSED_KO = "이 서버는 가입을 받지 않습니다. 계정은 관리자가 만들어 줍니다."


def new_account(username: str) -> dict[str, str]:
    return {"username": username, "password1": PASSWORD, "password2": PASSWORD}


@pytest.mark.django_db
def test_open_sign_up_creates_the_account_and_logs_in():
    response = Client().post("/accounts/signup/", new_account("newcomer"))
    assert response.status_code == 302
    assert User.objects.filter(username="newcomer").exists()


@pytest.mark.django_db
def test_closed_sign_up_shows_no_form_and_says_where_accounts_come_from(settings):
    settings.CHAT_SIGNUP = "closed"
    page = Client().get("/accounts/signup/")
    assert page.status_code == 200
    text = page.content.decode()
    assert CLOSED_EN in text
    assert 'name="password1"' not in text
    korean = Client(headers={"accept-language": "ko"}).get("/accounts/signup/")
    assert CLOSED_KO in korean.content.decode()


@pytest.mark.django_db
def test_closed_sign_up_refuses_a_post_and_creates_nothing(settings):
    settings.CHAT_SIGNUP = "closed"
    response = Client().post("/accounts/signup/", new_account("intruder"))
    assert response.status_code == 403
    assert CLOSED_EN in response.content.decode()
    assert not User.objects.filter(username="intruder").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["open", "closed"])
def test_the_login_page_offers_sign_up_only_while_it_is_open(settings, mode):
    settings.CHAT_SIGNUP = mode
    english = Client().get("/accounts/login/").content.decode()
    korean = Client(headers={"accept-language": "ko"}).get("/accounts/login/").content.decode()
    offered = 'href="/accounts/signup/"'
    assert (offered in english, offered in korean) == (mode == "open", mode == "open")
    if mode == "closed":
        assert "Accounts on this server come from its administrator." in english
        assert "이 서버의 계정은 관리자가 만들어 줍니다." in korean


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_server_with_sign_up_closed_refuses_accounts(
    tmp_path, redis_url: str, model_server: FakeOpenAI
):
    with running_stack(
        tmp_path,
        redis_url=redis_url,
        model_url=model_server.base_url,
        processes=1,
        CHAT_SIGNUP="closed",
    ) as stack:
        (server,) = stack.servers
        async with browser_session() as session:
            async with session.get(f"{server.http_url}/accounts/signup/") as page:
                assert page.status == 200
                text = await page.text()
            assert CLOSED_EN in text and 'name="password1"' not in text
            refused = await post_form(session, server, "/accounts/signup/", new_account("eve"))
            assert refused.status == 403
    with sqlite3.connect(stack.database) as db:
        assert db.execute("select count(*) from auth_user").fetchone() == (0,)
