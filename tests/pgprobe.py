"""Runs in a separate process against PostgreSQL (tests/test_postgres.py): the
document model is chosen by the database engine when Django starts, so the
PostgreSQL model cannot be tried in the SQLite test process.

    DATABASE_URL=postgres://... OPENAI_BASE_URL=... python -m tests.pgprobe SAMPLE QUERY...

Loads the sample as `load_jsonl` does, searches for each query (the last one
also without a model), and prints one JSON object of what it found.
"""

import asyncio
import io
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from pgvector.django import CosineDistance  # noqa: E402

from chat import rag  # noqa: E402
from chat.models import TaxLawDocument  # noqa: E402


def numbers(documents) -> list[str]:
    return [d.number for d in documents]


def main(sample: str, queries: list[str]) -> dict:
    call_command("load_jsonl", "chat.TaxLawDocument", sample, stdout=io.StringIO())
    found: dict = {"count": TaxLawDocument.objects.count()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'chat_taxlawdocument'::regclass AND attname = 'embedding'"
        )
        found["column"] = cursor.fetchone()[0]
        # Ten rows are cheaper to scan; forbid that to see the HNSW index serve the query.
        cursor.execute("SET enable_seqscan = off")
    vector = TaxLawDocument.objects.values_list("embedding", flat=True).first().to_list()
    nearest = TaxLawDocument.objects.order_by(CosineDistance("embedding", vector))[:3]
    found["plan"] = nearest.explain()
    for query in queries:
        nearest = asyncio.run(TaxLawDocument.objects.similarity_search_async(query, k=3))
        found[query] = {
            "knn": [(d.number, d.distance) for d in nearest],
            "hybrid": numbers(asyncio.run(rag.taxlaw_search(query=query)).documents),
        }
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    search = asyncio.run(rag.taxlaw_search(query=queries[-1]))
    found["keyword_only"] = {"flag": search.keyword_only, "found": numbers(search.documents)}
    return found


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:]), ensure_ascii=False))
