"""Tax-law Q&A documents: the text, its embedding, and a keyword index.

django-pyhub-rag stores them in a sqlite-vec vec0 virtual table on SQLite and
in a pgvector halfvec column with an HNSW index on PostgreSQL; the class is
chosen from the database engine, and each backend has its own migrations.
Embeddings always come from chat.llm, so they use the chat's OpenAI-compatible
server, read from the settings at call time.
"""

import json
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django_lifecycle import AFTER_DELETE, AFTER_SAVE, hook

from chat import llm

EMBEDDING_MODEL = "text-embedding-3-large"
EMBEDDING_DIMENSIONS = 3072

# A contentless FTS5 table with the trigram tokenizer, which matches Korean
# without a morphological analyser. SQLite only (created by chat/migrations).
KEYWORD_INDEX = "chat_taxlawdocument_fts"

# The page_content keys the search page shows in a document's details, in order.
DETAIL_FIELDS = ("문서번호", "법령분류", "요지", "회신", "파일내용", "생성일시")


class TaxLawDocumentMixin:
    """What both backends' documents share: parsed fields and our embedding calls."""

    page_content: str
    metadata: dict[str, Any]

    @cached_property
    def page_content_obj(self) -> dict[str, Any]:
        """page_content parsed: the dataset stores each document as a JSON object."""
        try:
            parsed = json.loads(self.page_content)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    @property
    def title(self) -> str:
        return str(self.page_content_obj.get("제목") or "")

    @property
    def number(self) -> str:
        return str(self.page_content_obj.get("문서번호") or "")

    @property
    def url(self) -> str:
        url = str(self.metadata.get("url") or "") if isinstance(self.metadata, dict) else ""
        # Loaded data is not trusted to carry only web links.
        return url if url.startswith(("https://", "http://")) else ""

    @property
    def detail_fields(self) -> list[tuple[str, str]]:
        obj = self.page_content_obj
        if not obj:
            return [("", self.page_content)]
        return [(key, str(obj[key])) for key in DETAIL_FIELDS if obj.get(key)]

    @property
    def source(self) -> dict[str, str]:
        """How a reply cites it (Message.sources)."""
        return {"title": self.title, "number": self.number, "url": self.url}

    def keyword_text(self) -> tuple[str, str]:
        """(title, body) for the keyword index."""
        if not self.page_content_obj:
            return "", self.page_content
        return self.title, "\n".join(value for key, value in self.detail_fields)

    @classmethod
    def embed(cls, input: str | list[str], model: str | None = None) -> Any:
        texts = [input] if isinstance(input, str) else input
        vectors = llm.embed_sync(texts, model=model or EMBEDDING_MODEL)
        _check_dimensions(vectors)
        return vectors[0] if isinstance(input, str) else vectors

    @classmethod
    async def embed_async(cls, input: str | list[str], model: str | None = None) -> Any:
        texts = [input] if isinstance(input, str) else input
        vectors = await llm.embed(texts, model=model or EMBEDDING_MODEL)
        _check_dimensions(vectors)
        return vectors[0] if isinstance(input, str) else vectors

    @classmethod
    def get_token_size(cls, text: str) -> int:
        # The library counts with tiktoken, which downloads its tables on first
        # use. UTF-8 bytes never undercount tokens, and need nothing offline.
        return len((text or "").encode())


def _check_dimensions(vectors: list[list[float]]) -> None:
    if any(len(vector) != EMBEDDING_DIMENSIONS for vector in vectors):
        raise llm.ModelError(
            f"The embedding model returned vectors of {len(vectors[0])} dimensions; "
            f"the documents have {EMBEDDING_DIMENSIONS}."
        )


if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    from pyhub.rag.fields.postgres import PGVectorField
    from pyhub.rag.models.postgres import PGVectorDocument

    class TaxLawDocument(TaxLawDocumentMixin, PGVectorDocument):
        # Above 2000 dimensions the field is a halfvec, which HNSW can index.
        embedding = PGVectorField(
            dimensions=EMBEDDING_DIMENSIONS, editable=False, embedding_model=EMBEDDING_MODEL
        )

        class Meta:
            indexes = [PGVectorDocument.make_hnsw_index("chat_taxlawdoc_idx", "halfvec", "cosine")]

else:
    from pyhub.rag.fields.sqlite import SQLiteVectorField
    from pyhub.rag.models.sqlite import SQLiteVectorDocument, SQLiteVectorDocumentQuerySet

    class TaxLawDocumentQuerySet(SQLiteVectorDocumentQuerySet):
        # vec0 virtual tables take no triggers, so the writes that bypass the
        # model's hooks rebuild the keyword index themselves.

        def bulk_create(self, objs, *args, **kwargs):
            with transaction.atomic(using=self.db):
                created = super().bulk_create(objs, *args, **kwargs)
                keyword_index_rebuild(using=self.db)
            return created

        def update(self, **kwargs):
            with transaction.atomic(using=self.db):
                count = super().update(**kwargs)
                keyword_index_rebuild(using=self.db)
            return count

        def delete(self):
            with transaction.atomic(using=self.db):
                deleted = super().delete()
                keyword_index_rebuild(using=self.db)
            return deleted

    class TaxLawDocument(TaxLawDocumentMixin, SQLiteVectorDocument):
        embedding = SQLiteVectorField(
            dimensions=EMBEDDING_DIMENSIONS, editable=False, embedding_model=EMBEDDING_MODEL
        )

        objects = TaxLawDocumentQuerySet.as_manager()

        @hook(AFTER_SAVE)
        @hook(AFTER_DELETE)
        def on_keyword_text_changed(self) -> None:
            keyword_index_rebuild(using=self._state.db or "default")

    def keyword_index_rebuild(*, using: str = "default") -> None:
        """Reindex every document. Documents change by bulk loads, and a full
        rebuild of the 1000-document dataset takes a fraction of a second, so
        this is simpler than tracking rows (vec0 inserts return no primary key)."""
        rows = [
            (pk, *TaxLawDocument(page_content=page_content).keyword_text())
            for pk, page_content in TaxLawDocument.objects.using(using).values_list(
                "pk", "page_content"
            )
        ]
        with connections[using].cursor() as cursor:
            cursor.execute(f"DELETE FROM {KEYWORD_INDEX}")
            cursor.executemany(
                f"INSERT INTO {KEYWORD_INDEX}(rowid, title, body) VALUES (%s, %s, %s)", rows
            )
