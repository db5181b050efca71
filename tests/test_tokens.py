"""chat/tokens.py against real tokenizer counts.

tests/token_counts.json holds o200k_base and cl100k_base counts, made once with the
npm package gpt-tokenizer (its tables are bundled; nothing is downloaded here), for
English, code, Markdown tables, numbers and Korean, and for the tax-law sample's
documents (read from TAXLAW_SAMPLE, keyed by 문서ID)."""

import json
from pathlib import Path

import pytest

from chat.tokens import tokens_estimate, tokens_estimate_messages
from tests.conftest import TAXLAW_SAMPLE

COUNTS = json.loads((Path(__file__).parent / "token_counts.json").read_text())
ENCODINGS = ("o200k_base", "cl100k_base")


@pytest.mark.parametrize("case", COUNTS["texts"], ids=lambda case: case["text"][:20])
def test_the_estimate_is_never_below_a_real_count_nor_far_above(case: dict) -> None:
    estimate = tokens_estimate(text=case["text"])
    real = max(case[encoding] for encoding in ENCODINGS)
    assert real <= estimate <= 2.6 * min(case[encoding] for encoding in ENCODINGS) + 2


def test_korean_tax_law_documents_are_counted_conservatively() -> None:
    if not TAXLAW_SAMPLE.exists():
        pytest.skip(f"the tax-law sample is not at {TAXLAW_SAMPLE}; set TAXLAW_SAMPLE to it")
    lines = TAXLAW_SAMPLE.read_text().splitlines()
    documents = [json.loads(line) for line in lines if line]
    seen = 0
    for document in documents:
        text = document["page_content"]
        counts = COUNTS["taxlaw_page_content"].get(json.loads(text)["문서ID"])
        if counts is None:
            continue
        seen += 1
        estimate = tokens_estimate(text=text)
        assert max(counts.values()) <= estimate <= 1.7 * counts["o200k_base"]
    assert seen == len(COUNTS["taxlaw_page_content"])


def test_messages_add_their_overhead() -> None:
    text = "급여에 포함하여 지급되는 퇴직금의 소득 구분은?"
    one = tokens_estimate_messages(messages=[{"role": "user", "content": text}])
    assert one == tokens_estimate(text=text) + 4 + 3
    assert tokens_estimate(text="") == 1
