import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import Message, Room
from tests.conftest import PASSWORD
from tests.fakeopenai import fake_embedding

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_root_redirects_to_room_list(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/chat/"


def test_room_list_shows_rooms_newest_first(client, room_factory):
    room_factory(name="Older")
    room_factory(name="Newer")
    response = client.get("/chat/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("Newer") < html.index("Older")


def test_room_list_puts_the_latest_activity_first(client, room_factory, message_factory):
    busy = room_factory(name="Busy room")
    room_factory(name="Quiet room")
    message_factory(busy, "hi")
    html = client.get("/chat/").content.decode()
    assert html.index("Busy room") < html.index("Quiet room")
    assert "1 message" in html
    assert "active 0\xa0minutes ago" in html


def test_new_room_invalid_htmx_post_answers_with_the_form_fragment(client):
    response = client.post("/chat/new/", {"name": "", "system_prompt": "x"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<form id="room-form"')
    assert "<html" not in html
    assert "This field is required." in html
    assert Room.objects.count() == 0


def test_new_room_invalid_plain_post_answers_with_the_whole_page(client):
    response = client.post("/chat/new/", {"name": ""})
    html = response.content.decode()
    assert "<html" in html and "This field is required." in html
    assert Room.objects.count() == 0


def test_new_room_valid_htmx_post_takes_the_user_into_the_room(client):
    response = client.post(
        "/chat/new/", {"name": "Taxes", "system_prompt": "Answer in Korean."}, **HTMX
    )
    room = Room.objects.get()
    assert (room.name, room.system_prompt) == ("Taxes", "Answer in Korean.")
    assert response["HX-Redirect"] == f"/chat/{room.pk}/"


def test_new_room_valid_plain_post_redirects(client):
    response = client.post("/chat/new/", {"name": "Plain"})
    assert response.status_code == 302
    assert response["Location"] == Room.objects.get().get_absolute_url()


def test_room_page_shows_messages_composer_and_live_connection(
    client, room_factory, message_factory
):
    room = room_factory(name="Room A", system_prompt="Be brief.")
    message_factory(room, "first question")
    message_factory(room, "an answer", role=Message.Role.ASSISTANT)
    html = client.get(room.get_absolute_url()).content.decode()
    assert "Be brief." in html
    assert html.index("first question") < html.index("an answer")
    assert f'data-ws-connect="/ws/chat/{room.pk}/"' in html
    assert 'id="composer"' in html and 'id="composer-answer"' in html
    assert 'src="/static/chat/composer.js"' in html
    assert 'aria-live="polite"' in html


def test_room_page_escapes_user_text(client, room_factory, message_factory):
    room = room_factory()
    message_factory(room, "<script>alert(1)</script>")
    html = client.get(room.get_absolute_url()).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("path", ["/chat/999/", "/chat/999/edit/"])
def test_unknown_room_is_404(client, path):
    assert client.get(path).status_code == 404


def test_pages_reject_other_methods(client, room_factory):
    room = room_factory()
    assert client.post(room.get_absolute_url()).status_code == 405
    assert client.delete("/chat/").status_code == 405


def test_demo_model_is_labelled_when_no_model_is_configured(client, settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    html = client.get("/chat/").content.decode()
    assert "Offline demo model" in html
    assert "OPENAI_API_KEY" in html


def test_htmx_and_static_assets_are_served_by_the_app(client):
    html = client.get("/chat/").content.decode()
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "/static/django_htmx/ext/hx-ws-2.min.js" in html
    assert "http://" not in html.split("<body")[0] and "https://" not in html.split("<body")[0]


SEARCH = "/chat/docs/law/tax/"


def test_room_list_links_to_the_document_search(client):
    assert f'href="{SEARCH}"' in client.get("/chat/").content.decode()


def test_search_page_without_a_query_invites_one(client, taxlaw_document_factory):
    taxlaw_document_factory()
    html = client.get(SEARCH).content.decode()
    assert "Type a question or a term to search." in html
    assert 'hx-trigger="input changed delay:300ms, search"' in html
    assert "doc__title" not in html


def test_search_page_shows_matching_documents_with_details_and_source(
    client, taxlaw_document_factory, model
):
    document = taxlaw_document_factory(요지="퇴직금의 선급에 해당", url="https://taxlaw.example/7")
    other = taxlaw_document_factory("부가가치세 신고", number="부가46015-1")
    model.set_embedding("퇴직금", fake_embedding(other.title))
    html = client.get(SEARCH, {"query": "퇴직금"}).content.decode()
    assert html.index(document.title) < html.index(other.title)
    assert "소득46011-364" in html
    assert "<details>" in html and "<dt>요지</dt><dd>퇴직금의 선급에 해당</dd>" in html
    assert 'href="https://taxlaw.example/7" target="_blank" rel="noopener noreferrer"' in html
    assert 'value="퇴직금"' in html
    assert "Keyword search only" not in html


def test_search_as_you_type_answers_with_the_results_fragment(client, taxlaw_document_factory):
    taxlaw_document_factory()
    response = client.get(SEARCH, {"query": "퇴직금"}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html and "퇴직금의 소득구분" in html
    # Back-button restores need the whole page.
    restore = client.get(
        SEARCH, {"query": "퇴직금"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX
    )
    assert "<html" in restore.content.decode()


def test_searches_past_the_rate_limit_rank_by_keywords_without_the_model(
    client, settings, taxlaw_document_factory, model
):
    settings.CHAT_RATE_LIMIT = 1
    taxlaw_document_factory()
    first = client.get(SEARCH, {"query": "퇴직금"}).content.decode()
    second = client.get(SEARCH, {"query": "퇴직금 소득"}).content.decode()
    assert "searched faster than the rate limit allows" not in first
    assert "searched faster than the rate limit allows" in second
    assert "퇴직금의 소득구분" in second  # found by its words
    assert [request["input"] for request in model.embedding_requests] == [["퇴직금"]]


def test_search_without_a_model_says_it_is_keyword_only(client, settings, taxlaw_document_factory):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    taxlaw_document_factory()
    html = client.get(SEARCH, {"query": "상속세"}).content.decode()
    assert "Keyword search only" in html
    assert "No documents match “상속세”." in html


def test_a_reply_shows_its_sources(client, room_factory, message_factory):
    room = room_factory()
    source = {"title": "퇴직금의 소득구분", "number": "소득46011-364"}
    source["url"] = "https://taxlaw.example/7"
    message_factory(room, "답변", role=Message.Role.ASSISTANT, sources=[source])
    html = client.get(room.get_absolute_url()).content.decode()
    assert 'class="message__sources"' in html
    link = '<a href="https://taxlaw.example/7" target="_blank" rel="noopener noreferrer">'
    assert f"{link}소득46011-364</a> 퇴직금의 소득구분" in html


# Accounts and access.

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


# Long rooms.


def make_messages(room, count: int) -> list[Message]:
    return Message.objects.bulk_create(
        Message(room=room, role=Message.Role.USER, content=f"message {i}") for i in range(count)
    )


def test_a_long_room_shows_its_newest_page_and_loads_earlier_ones_on_demand(
    client, room_factory, settings
):
    settings.CHAT_PAGE_SIZE = 50
    room = room_factory()
    made = make_messages(room, 120)

    html = client.get(room.get_absolute_url()).content.decode()
    assert "message 119" in html and "message 70<" in html and "message 69<" not in html
    earlier = reverse("chat:room_messages_earlier", args=[room.pk])
    assert f'hx-get="{earlier}?before={made[70].pk}"' in html

    page = client.get(f"{earlier}?before={made[70].pk}", **HTMX).content.decode()
    assert "<html" not in page
    assert "message 20<" in page and "message 69<" in page and "message 19<" not in page
    assert f"?before={made[20].pk}" in page

    last = client.get(f"{earlier}?before={made[20].pk}", **HTMX).content.decode()
    assert "message 0<" in last and "Show earlier messages" not in last


def test_the_room_page_costs_the_same_queries_however_long_the_room(
    client, room_factory, django_assert_num_queries
):
    short, long = room_factory(), room_factory()
    make_messages(short, 5)
    make_messages(long, 1000)
    client.get(short.get_absolute_url())  # warm the session and caches
    client.get(long.get_absolute_url())  # a return visit, which looks for what is new
    with CaptureQueriesContext(connection) as short_queries:
        client.get(short.get_absolute_url())
    with django_assert_num_queries(len(short_queries)):
        client.get(long.get_absolute_url())


def test_earlier_messages_need_a_message_id(client, room_factory):
    room = room_factory()
    url = reverse("chat:room_messages_earlier", args=[room.pk])
    assert client.get(url).status_code == 400
    assert client.get(f"{url}?before=x").status_code == 400


def test_earlier_messages_of_someone_elses_room_are_404(room_factory, as_bob):
    room = room_factory()
    url = reverse("chat:room_messages_earlier", args=[room.pk])
    assert as_bob.get(f"{url}?before=999").status_code == 404


def test_the_document_page_on_an_empty_database_shows_how_to_load_them(client):
    html = client.get(SEARCH).content.decode()
    assert "No documents are loaded yet." in html
    assert "<code>make load-taxlaw</code>" in html
    assert "No documents match" not in client.get(SEARCH, {"query": "퇴직금"}).content.decode()


def test_a_new_room_gets_the_configured_model_and_temperature(client, settings):
    settings.OPENAI_TEMPERATURE = 0.7
    client.post("/chat/new/", {"name": "Defaults", "system_prompt": ""})
    room = Room.objects.get(name="Defaults")
    assert (room.model, room.temperature) == ("test-model", 0.7)


def test_an_unknown_model_is_an_inline_error_and_nothing_is_saved(client):
    response = client.post(
        "/chat/new/", {"name": "R", "model": "gpt-17", "temperature": "3"}, **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="room-form"')
    assert "The model server has no model called “gpt-17”." in html
    assert "Ensure this value is less than or equal to 2.0." in html
    assert Room.objects.count() == 0


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
