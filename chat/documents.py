"""Tax-law Q&A documents: the text, its embedding, and a keyword index.

django-pyhub-rag stores them in a sqlite-vec vec0 virtual table on SQLite and
in a pgvector halfvec column with an HNSW index on PostgreSQL; the class is
chosen from the database engine (so the table has a migration per backend).
Embeddings always come from chat.llm, so they use the chat's OpenAI-compatible
server, read from the settings at call time.
"""

import json
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import connections, transaction

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
        # vec0 virtual tables take no triggers, so every write keeps the keyword
        # index in step itself, in the same transaction.

        def bulk_create(self, objs, *args, **kwargs):
            with transaction.atomic(using=self.db):
                created = super().bulk_create(objs, *args, **kwargs)
                pks = [document.pk for document in created]
                keyword_index_update(pks=None if None in pks else pks, using=self.db)
            return created

        def update(self, **kwargs):
            with transaction.atomic(using=self.db):
                pks = list(self.values_list("pk", flat=True))
                count = super().update(**kwargs)
                keyword_index_update(pks=pks, using=self.db)
            return count

        def delete(self):
            with transaction.atomic(using=self.db):
                pks = list(self.values_list("pk", flat=True))
                deleted = super().delete()
                keyword_index_update(pks=pks, using=self.db)
            return deleted

    # One of the two definitions exists, chosen by the database backend.
    class TaxLawDocument(TaxLawDocumentMixin, SQLiteVectorDocument):  # type: ignore[no-redef]
        embedding = SQLiteVectorField(
            dimensions=EMBEDDING_DIMENSIONS, editable=False, embedding_model=EMBEDDING_MODEL
        )

        objects = TaxLawDocumentQuerySet.as_manager()

        def save(self, *args, **kwargs) -> None:
            using = kwargs.get("using") or self._state.db or "default"
            with transaction.atomic(using=using):
                super().save(*args, **kwargs)
                keyword_index_update(pks=None if self.pk is None else [self.pk], using=using)

        def delete(self, *args, **kwargs):
            using = kwargs.get("using") or self._state.db or "default"
            pk = self.pk
            with transaction.atomic(using=using):
                deleted = super().delete(*args, **kwargs)
                keyword_index_update(pks=[pk], using=using)
            return deleted

    def keyword_index_update(*, pks: list[int] | None, using: str = "default") -> None:
        """Reindex the documents `pks`, or every document when they are unknown:
        vec0 inserts do not report the new rows' primary keys. Reindexing all of
        the 1000-document dataset takes a few seconds, once per load."""
        documents = TaxLawDocument.objects.using(using)
        if pks is not None:
            documents = documents.filter(pk__in=pks)
        rows = [
            (pk, *TaxLawDocument(page_content=page_content).keyword_text())
            for pk, page_content in documents.values_list("pk", "page_content")
        ]
        with connections[using].cursor() as cursor:
            if pks is None:
                cursor.execute(f"DELETE FROM {KEYWORD_INDEX}")
            else:
                cursor.executemany(
                    f"DELETE FROM {KEYWORD_INDEX} WHERE rowid = %s", [(pk,) for pk in pks]
                )
            cursor.executemany(
                f"INSERT INTO {KEYWORD_INDEX}(rowid, title, body) VALUES (%s, %s, %s)", rows
            )
