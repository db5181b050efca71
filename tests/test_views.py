"""The pages (chat.views): the room list, making a room, a room's page with its
messages, composer and sources, the demo model's label and the app's own assets, and a
long room shown a page at a time. Who may see them is tests/test_views_access.py; the
document search, tests/test_views_documents.py."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import Message, Room

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


def test_a_reply_shows_its_sources(client, room_factory, message_factory):
    room = room_factory()
    source = {"title": "퇴직금의 소득구분", "number": "소득46011-364"}
    source["url"] = "https://taxlaw.example/7"
    message_factory(room, "답변", role=Message.Role.ASSISTANT, sources=[source])
    html = client.get(room.get_absolute_url()).content.decode()
    assert 'class="message__sources"' in html
    link = '<a href="https://taxlaw.example/7" target="_blank" rel="noopener noreferrer">'
    assert f"{link}소득46011-364</a> 퇴직금의 소득구분" in html


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
