"""Token counts without a tokenizer: a conservative estimate.

tiktoken downloads its tables at run time, so nothing here may touch it. The weights
are per character class, fitted so the estimate is never below what OpenAI's
o200k_base and cl100k_base encodings count for English prose, code, Markdown tables,
numbers and Korean (tests/test_tokens.py holds those counts). It over-counts by up to
about 1.6× (Korean on o200k_base), which errs on the side of fitting the window.
"""

LETTER, DIGIT, PUNCT, SPACE = 1 / 3.5, 0.5, 1.0, 0.1
HANGUL, OTHER = 1.3, 2.5  # any other non-ASCII character: up to 4 UTF-8 bytes
MESSAGE_OVERHEAD = 4  # the role and separators of one chat message


def tokens_estimate(*, text: str) -> int:
    """At least as many tokens as `text` takes in OpenAI's current encodings."""
    total = 0.0
    for ch in text:
        if ch.isascii():
            if ch.isalpha():
                total += LETTER
            elif ch.isdigit():
                total += DIGIT
            elif ch.isspace():
                total += SPACE
            else:
                total += PUNCT
        elif "\uac00" <= ch <= "\ud7a3" or "\u3130" <= ch <= "\u318f":
            total += HANGUL
        else:
            total += OTHER
    return int(total) + 1


def tokens_estimate_messages(*, messages: list[dict[str, str]]) -> int:
    """The estimate for a chat request's messages, with each message's overhead."""
    return (
        sum(
            tokens_estimate(text=message.get("content", "")) + MESSAGE_OVERHEAD
            for message in messages
        )
        + 3
    )  # the reply's priming
