"""404, 403 and 500 pages in the site's look, in English and Korean (the 404 with DEBUG on too),
and the favicon."""

import pytest
from django.test import RequestFactory
from django.utils import translation
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db

KOREAN = {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9"}


@pytest.fixture(autouse=True)
def production(settings):
    settings.DEBUG = False


@pytest.mark.parametrize(
    ("headers", "title", "back"),
    [
        ({}, "Page not found", "Back to your rooms"),
        (KOREAN, "페이지를 찾을 수 없습니다", "내 방으로 돌아가기"),
    ],
)
def test_a_missing_page_is_styled_and_translated(client, headers, title, back):
    response = client.get("/chat/999999/", **headers)
    html = response.content.decode()
    assert response.status_code == 404
    assert "chat/chat.css" in html and 'class="error-page card"' in html
    assert title in html and back in html


@pytest.mark.parametrize(("headers", "title"), [({}, "Not allowed"), (KOREAN, "허용되지 않습니다")])
def test_a_forbidden_page_is_styled_and_translated(
    client, room_factory, user_factory, headers, title
):
    bob = user_factory("bob")
    room = room_factory(owner=bob)
    room.members.add(client.get("/chat/").wsgi_request.user)
    response = client.get(f"/chat/{room.pk}/edit/", **headers)
    assert response.status_code == 403
    assert title in response.content.decode() and "error-page" in response.content.decode()


@pytest.mark.parametrize(
    ("language", "title"), [("en", "Something went wrong"), ("ko", "문제가 생겼습니다")]
)
def test_a_server_error_page_is_styled_and_translated(language, title):
    request = RequestFactory().get("/chat/")
    with translation.override(language):
        response = server_error(request)
    html = response.content.decode()
    assert response.status_code == 500
    assert title in html and "chat/chat.css" in html and f'lang="{language}"' in html


@pytest.mark.parametrize("url", ["/chat/999999/", "/no/such/page/", "/chat/999999/export/"])
def test_with_debug_on_a_missing_page_is_the_designed_one_too(client, settings, url):
    settings.DEBUG = True
    response = client.get(url, **KOREAN)
    html = response.content.decode()
    assert response.status_code == 404
    assert 'class="error-page card"' in html and "페이지를 찾을 수 없습니다" in html
    assert "URLconf" not in html and "Using the URLconf" not in html


def test_the_favicon_is_served_and_linked(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)
    page = client.get("/chat/").content.decode()
    assert f'<link rel="icon" href="{response["Location"]}"' in page


def test_the_favicon_needs_no_login(client):
    client.logout()
    assert client.get("/favicon.ico").status_code == 301
