"""The tax law document search page (/chat/docs/law/tax/): the link to it, searching
with the model's embeddings or by keywords alone, the results fragment as one types,
and the page on an empty database."""

import pytest

from tests.fakeopenai import fake_embedding
from tests.test_views import HTMX

pytestmark = pytest.mark.django_db


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


def test_the_document_page_on_an_empty_database_shows_how_to_load_them(client):
    html = client.get(SEARCH).content.decode()
    assert "No documents are loaded yet." in html
    assert "<code>make load-taxlaw</code>" in html
    assert "No documents match" not in client.get(SEARCH, {"query": "퇴직금"}).content.decode()
