"""Token counts without a tokenizer: a conservative estimate.

tiktoken downloads its tables at run time, so nothing here may touch it. The weights
are per character class, fitted so the estimate is never below what OpenAI's
o200k_base and cl100k_base encodings count for English prose, code, Markdown tables,
numbers and Korean (tests/test_tokens.py holds those counts). It over-counts by up to
about 1.6× (Korean on o200k_base), which errs on the side of fitting the window.
"""

import re

# Weights per character class, in 70ths of a token so sums are exact: a letter
# 1/3.5, a digit 0.5, punctuation 1, a space 0.1, Hangul 1.3, any other non-ASCII
# character 2.5 (up to 4 UTF-8 bytes).
LETTER, DIGIT, PUNCT, SPACE, HANGUL, OTHER = 20, 35, 70, 7, 91, 175
MESSAGE_OVERHEAD = 4  # the role and separators of one chat message

# Each ASCII byte to its class (L letter, D digit, S space, P the rest), so one
# bytes.translate and a count per class do what a loop over the characters would.
_CLASSES = bytes(
    ord("L" if c.isalpha() else "D" if c.isdigit() else "S" if c.isspace() else "P")
    for c in map(chr, range(256))  # bytes.translate takes 256; only ASCII reaches it
)
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3130-\u318f]+")


def tokens_estimate(*, text: str) -> int:
    """At least as many tokens as `text` takes in OpenAI's current encodings."""
    classes = text.encode("ascii", "ignore").translate(_CLASSES)
    letters, digits, spaces = classes.count(b"L"), classes.count(b"D"), classes.count(b"S")
    hangul = 0 if len(classes) == len(text) else sum(map(len, _HANGUL.findall(text)))
    total = (
        LETTER * letters
        + DIGIT * digits
        + SPACE * spaces
        + PUNCT * (len(classes) - letters - digits - spaces)
        + HANGUL * hangul
        + OTHER * (len(text) - len(classes) - hangul)
    )
    return total // 70 + 1


def tokens_estimate_messages(*, messages: list[dict[str, str]]) -> int:
    """The estimate for a chat request's messages, with each message's overhead."""
    return (
        sum(
            tokens_estimate(text=message.get("content", "")) + MESSAGE_OVERHEAD
            for message in messages
        )
        + 3
    )  # the reply's priming
