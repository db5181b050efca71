"""Reading what a page sends over its room socket: frames, ids, its language."""

import json
import uuid
from typing import Any

from django.http import HttpRequest
from django.utils import translation


def language(scope: dict[str, Any]) -> str:
    """The language LocaleMiddleware would pick for this handshake: the language
    cookie, else the browser's Accept-Language, else the default."""
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)


def key_pk(key: object) -> int:
    """The message a broadcast's key names (chat.broadcast.message_key), else 0."""
    if isinstance(key, str) and key.startswith("message-") and key[8:].isdecimal():
        return int(key[8:])
    return 0


def as_id(value: object, *, allow_zero: bool = False) -> int | None:
    """A message id from a frame: htmx sends form values as strings, scripts as numbers."""
    if isinstance(value, str) and value.isdecimal():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= (0 if allow_zero else 1):
        return value
    return None


def parse(text_data: str | None) -> dict[str, Any] | None:
    if text_data is None:
        return None
    try:
        frame = json.loads(text_data)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def as_uuid(value: object) -> uuid.UUID | None:
    """A send's client id: the page makes a UUID for each message it sends."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
