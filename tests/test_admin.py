"""The admin: rooms with their model, messages with their usage, and the tax-law
documents, read-only so that opening them never reaches pyhub-rag's tiktoken path."""

import pytest
import tiktoken
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(user_factory) -> Client:
    browser = Client()
    browser.force_login(user_factory("root", is_staff=True, is_superuser=True))
    return browser


@pytest.fixture
def no_tiktoken(monkeypatch):
    """A tripwire: tiktoken downloads its tables on first use."""

    def refuse(*args, **kwargs):
        raise AssertionError("tiktoken was called")

    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)
    monkeypatch.setattr(tiktoken, "get_encoding", refuse)


def test_documents_are_listed_and_shown_without_tiktoken(
    admin_client, taxlaw_document_factory, no_tiktoken
):
    document = taxlaw_document_factory()
    listing = admin_client.get("/admin/chat/taxlawdocument/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "소득46011-364" in html and "급여에 포함하여 지급되는 퇴직금의 소득구분" in html
    detail = admin_client.get(f"/admin/chat/taxlawdocument/{document.pk}/change/")
    assert detail.status_code == 200
    assert "taxlaw.example/docs/1" in detail.content.decode()
    assert 'type="submit"' not in detail.content.decode().split('id="content-main"')[1]


def test_documents_cannot_be_added_changed_or_deleted_in_the_admin(
    admin_client, taxlaw_document_factory, no_tiktoken
):
    document = taxlaw_document_factory()
    assert admin_client.get("/admin/chat/taxlawdocument/add/").status_code == 403
    assert admin_client.post(f"/admin/chat/taxlawdocument/{document.pk}/delete/").status_code == 403
    response = admin_client.post(
        f"/admin/chat/taxlawdocument/{document.pk}/change/", {"page_content": "changed"}
    )
    assert response.status_code == 403
    document.refresh_from_db()
    assert "급여" in document.page_content


def test_rooms_show_their_model_and_messages_their_tokens(
    admin_client, room_factory, message_factory
):
    room = room_factory(name="Audited", model="fake-model", temperature=0.5)
    message_factory(room, "answer", role="assistant", prompt_tokens=123, completion_tokens=45)
    assert "fake-model" in admin_client.get("/admin/chat/room/").content.decode()
    html = admin_client.get("/admin/chat/message/").content.decode()
    assert "123" in html and "45" in html
