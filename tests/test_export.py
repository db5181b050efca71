"""Export: a room as Markdown or JSON, to its members only."""

import json

import pytest
from django.test import Client

from chat.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(room_factory, message_factory, user, settings):
    settings.CHAT_PRICES = {"test-model": {"prompt": 1, "completion": 2}}
    room = room_factory(name="세금 질문 / Taxes", system_prompt="Answer in Korean.\nBe brief.")
    message_factory(room, "퇴직금은?", author=user)
    message_factory(
        room,
        "근로소득입니다.",
        role="assistant",
        model="test-model",
        prompt_tokens=100,
        completion_tokens=50,
        sources=[
            {"title": "퇴직금의 소득구분", "number": "소득46011-364", "url": "https://x.example/1"}
        ],
    )
    message_factory(room, "and then?", author=user)
    message_factory(
        room, "", role="assistant", status="error", error="Could not reach the model server."
    )
    return room


def test_markdown_holds_the_name_prompt_and_every_message(client, room):
    response = client.get(f"/chat/{room.pk}/export/?format=md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == (
        f"attachment; filename*=utf-8''%EC%84%B8%EA%B8%88-%EC%A7%88%EB%AC%B8-taxes-{room.pk}.md"
    )
    text = response.content.decode()
    assert text.startswith("# 세금 질문 / Taxes\n")
    assert "> Answer in Korean.\n> Be brief." in text
    first = room.messages.first()
    assert f"## alice, {first.created_at.isoformat()}\n\n퇴직금은?" in text
    assert "## assistant (test-model), " in text
    assert "- [소득46011-364 퇴직금의 소득구분](https://x.example/1)" in text
    assert "Tokens: 100 prompt, 50 reply, $0.0002" in text
    assert "Status: error: Could not reach the model server." in text
    assert "Tokens: unknown" in text


def test_json_has_one_object_per_message(client, room):
    response = client.get(f"/chat/{room.pk}/export/?format=json")
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].endswith(f"-{room.pk}.json")
    data = json.loads(response.content)
    assert data["room"] == {
        "id": room.pk,
        "name": "세금 질문 / Taxes",
        "system_prompt": "Answer in Korean.\nBe brief.",
        "model": "test-model",
        "answered_by": ["test-model"],
        "temperature": 1.0,
    }
    messages = data["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["author"] == "alice" and messages[0]["content"] == "퇴직금은?"
    assert messages[1]["author"] is None
    assert messages[1]["sources"][0]["number"] == "소득46011-364"
    assert (messages[1]["prompt_tokens"], messages[1]["completion_tokens"]) == (100, 50)
    assert messages[1]["cost_usd"] == "0.0002"
    assert (messages[3]["status"], messages[3]["prompt_tokens"]) == ("error", None)
    assert all(m["created_at"] for m in messages)


def test_the_export_names_the_model_that_answered_not_the_room_s_setting(
    client, room_factory, message_factory, user, settings
):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    room = room_factory(name="Offline", model="gpt-4o-mini")
    empty = client.get(f"/chat/{room.pk}/export/?format=md").content.decode()
    assert "Model: offline-demo, temperature" in empty
    message_factory(room, "hi", author=user)
    message_factory(room, "demo", role="assistant", model="offline-demo")
    message_factory(room, "real", role="assistant", model="gpt-4o")
    text = client.get(f"/chat/{room.pk}/export/?format=md").content.decode()
    assert "Model: offline-demo, gpt-4o, temperature" in text
    assert "gpt-4o-mini" not in text
    data = json.loads(client.get(f"/chat/{room.pk}/export/?format=json").content)
    assert data["room"]["answered_by"] == ["offline-demo", "gpt-4o"]
    assert data["room"]["model"] == "gpt-4o-mini"


def test_markdown_is_the_default_format(client, room):
    assert client.get(f"/chat/{room.pk}/export/")["Content-Type"].startswith("text/markdown")


@pytest.mark.parametrize("format", ["pdf", "", "MD"])
def test_an_unknown_format_is_a_clear_400(client, room, format):
    response = client.get(f"/chat/{room.pk}/export/?format={format}")
    assert response.status_code == 400
    assert response.content.decode() == "Unknown export format: use ?format=md or ?format=json."


def test_members_can_export_and_everyone_else_gets_404(client, room, user_factory):
    bob = user_factory("bob")
    client.force_login(bob)
    assert client.get(f"/chat/{room.pk}/export/?format=json").status_code == 404
    assert client.get("/chat/999999/export/").status_code == 404
    room.members.add(bob)
    assert client.get(f"/chat/{room.pk}/export/?format=json").status_code == 200


def test_anonymous_visitors_are_sent_to_log_in(room):
    response = Client().get(f"/chat/{room.pk}/export/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_room_page_links_both_exports(client, room):
    html = client.get(room.get_absolute_url()).content.decode()
    assert f'href="/chat/{room.pk}/export/?format=md" download' in html
    assert f'href="/chat/{room.pk}/export/?format=json" download' in html


def test_an_empty_room_exports_its_name(client, room_factory):
    room = room_factory(name="Empty")
    assert Message.objects.filter(room=room).count() == 0
    data = json.loads(client.get(f"/chat/{room.pk}/export/?format=json").content)
    assert data["messages"] == [] and data["room"]["name"] == "Empty"
