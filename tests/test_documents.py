"""Tax-law documents on SQLite: fields, embeddings from the tests' server, real
sqlite-vec KNN, the keyword index, and loading the sample."""

import json

import pytest

from chat import llm, rag
from chat.documents import EMBEDDING_DIMENSIONS, EMBEDDING_MODEL
from chat.models import TaxLawDocument
from tests.fakeopenai import fake_embedding

pytestmark = pytest.mark.django_db


def test_page_content_is_parsed_into_the_fields_the_pages_show(taxlaw_document_factory):
    document = taxlaw_document_factory(
        "근로소득 해당 여부", number="서일46011-11762", 요지="근로소득에 해당함", 회신="..."
    )
    document = TaxLawDocument.objects.get(pk=document.pk)
    assert document.page_content_obj["제목"] == "근로소득 해당 여부"
    assert (document.title, document.number) == ("근로소득 해당 여부", "서일46011-11762")
    assert document.detail_fields == [
        ("문서번호", "서일46011-11762"),
        ("법령분류", "종합소득세"),
        ("요지", "근로소득에 해당함"),
        ("회신", "..."),
    ]
    assert document.source == {
        "title": "근로소득 해당 여부",
        "number": "서일46011-11762",
        "url": "https://taxlaw.example/docs/1",
    }


def test_a_document_that_is_not_json_is_shown_as_plain_text():
    document = TaxLawDocument(page_content="퇴직금 관련 메모", metadata={})
    assert document.page_content_obj == {}
    assert document.detail_fields == [("", "퇴직금 관련 메모")]
    assert document.keyword_text() == ("", "퇴직금 관련 메모")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x/y", ""])
def test_only_web_links_are_offered_as_sources(url):
    assert TaxLawDocument(page_content="{}", metadata={"url": url}).url == ""


def test_embeddings_come_from_the_configured_server(model):
    vector = TaxLawDocument.embed("퇴직금")
    assert vector == pytest.approx(fake_embedding("퇴직금"), abs=1e-6)
    request = model.embedding_requests[-1]
    assert (request["model"], request["input"]) == (EMBEDDING_MODEL, ["퇴직금"])
    assert request["encoding_format"] == "float"


@pytest.mark.asyncio
async def test_async_embeddings_come_from_the_configured_server(model):
    vectors = await TaxLawDocument.embed_async(["가", "나"])
    assert [len(v) for v in vectors] == [EMBEDDING_DIMENSIONS, EMBEDDING_DIMENSIONS]
    assert vectors[1] == pytest.approx(fake_embedding("나"), abs=1e-6)


def test_a_server_with_other_dimensions_is_refused(model):
    model.set_embedding("짧은", [1.0, 0.0])
    with pytest.raises(llm.ModelError, match="2 dimensions"):
        TaxLawDocument.embed("짧은")


def test_saving_a_new_text_embeds_it_again(taxlaw_document_factory, model):
    document = taxlaw_document_factory("원래 제목")
    document.page_content = json.dumps({"제목": "바뀐 제목"}, ensure_ascii=False)
    document.save()
    assert model.embedding_requests[-1]["input"] == [document.page_content]
    stored = TaxLawDocument.objects.get(pk=document.pk)
    assert stored.embedding.tolist() == pytest.approx(fake_embedding(document.page_content))


def test_knn_finds_the_nearest_document_by_cosine_distance(taxlaw_document_factory, model):
    near, far = (taxlaw_document_factory(title) for title in ("가까운 문서", "먼 문서"))
    # Mostly `near`, a little `far`: both are candidates, in that order.
    pairs = zip(fake_embedding("가까운 문서"), fake_embedding("먼 문서"), strict=True)
    mixed = [0.9 * a + 0.3 * b for a, b in pairs]
    model.set_embedding("질문", mixed)
    results = list(TaxLawDocument.objects.similarity_search("질문", k=2))
    assert [r.pk for r in results] == [near.pk, far.pk]
    assert 0 < results[0].distance < results[1].distance < 1


def test_the_keyword_index_follows_every_write(taxlaw_document_factory):
    def found(word: str) -> list[int]:
        return rag.taxlaw_keyword_ranking(query=word, limit=10)

    first = taxlaw_document_factory("퇴직금의 소득구분")
    second = taxlaw_document_factory("부가가치세 신고")
    assert found("퇴직금") == [first.pk]
    # Writes that skip the model's save() and delete() keep it in step too.
    TaxLawDocument.objects.filter(pk=second.pk).update(
        page_content=json.dumps({"제목": "증여재산 평가"}, ensure_ascii=False)
    )
    assert (found("부가가치세"), found("증여재산")) == ([], [second.pk])
    TaxLawDocument.objects.filter(pk=first.pk).delete()
    assert found("퇴직금") == []
    TaxLawDocument.objects.get(pk=second.pk).delete()
    assert found("증여재산") == []
    # A new row whose primary key vec0 does not report: everything is reindexed.
    TaxLawDocument.objects.create(page_content="상속세 메모", embedding=fake_embedding("메모"))
    assert len(found("상속세")) == 1


def test_loading_the_sample_stores_its_documents_embeddings_and_keywords(taxlaw_sample, model):
    assert len(taxlaw_sample) == 10
    retirement = next(d for d in taxlaw_sample if d.number == "소득46011-364")
    assert retirement.title == "급여에 포함하여 지급되는 퇴직금의 소득세법상 소득구분"
    assert retirement.url.startswith("https://taxlaw.nts.go.kr/")
    assert len(retirement.embedding) == EMBEDDING_DIMENSIONS
    # Loading used the embeddings in the file: nothing was sent to the server.
    assert model.embedding_requests == []
    assert rag.taxlaw_keyword_ranking(query="퇴직금", limit=1) == [retirement.pk]
    # A query embedded exactly as the document is at distance zero from it.
    model.set_embedding("그 문서", retirement.embedding.tolist())
    nearest = TaxLawDocument.objects.similarity_search("그 문서", k=3)
    assert nearest[0].pk == retirement.pk
    assert nearest[0].distance == pytest.approx(0, abs=1e-6)
