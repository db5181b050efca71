"""What each reply did, for operators: the metrics it moves and one log line when it ends.

The reply engine calls `reply_started` when a reply's task begins,
`reply_token` for every streamed delta, `model_error` on a model fault and
`reply_finished` at the end. The log line carries the room, the reply's id, the
model, the token count (null: the stream does not report it), the duration and
the outcome; never the text, the error message or any setting.
"""

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from chat import metrics

logger = logging.getLogger("chat.replies")


@dataclass
class _Watch:
    room_id: int
    model: str
    started: float
    first_token: float | None = None
    chunks: int = 0
    error_kind: str | None = None


_watching: dict[int, _Watch] = {}


def reply_started(*, room_id: int, reply_id: int, model: str) -> None:
    _watching[reply_id] = _Watch(room_id=room_id, model=model, started=time.monotonic())
    metrics.REPLIES_STREAMING.inc()
    # A task that dies before reply_finished still counts, as "failed".
    with contextlib.suppress(RuntimeError):  # no event loop: nothing to watch
        if (task := asyncio.current_task()) is not None:
            task.add_done_callback(lambda _: reply_finished(reply_id=reply_id, outcome="failed"))


def reply_token(*, reply_id: int) -> None:
    if (watch := _watching.get(reply_id)) is None:
        return
    if watch.first_token is None:
        watch.first_token = time.monotonic()
        metrics.TIME_TO_FIRST_TOKEN.observe(watch.first_token - watch.started)
    watch.chunks += 1


def model_error(*, reply_id: int, error: Exception) -> None:
    kind = getattr(error, "kind", "other")
    metrics.MODEL_ERRORS.labels(kind=kind).inc()
    if (watch := _watching.get(reply_id)) is not None:
        watch.error_kind = kind


def reply_finished(*, reply_id: int, outcome: str) -> None:
    """Count the reply under `outcome` (its final status) and log its line; once per reply."""
    watch = _watching.pop(reply_id, None)
    if watch is None:
        return
    duration = time.monotonic() - watch.started
    metrics.REPLIES_STREAMING.dec()
    metrics.REPLIES.labels(outcome=outcome).inc()
    metrics.REPLY_DURATION.observe(duration)
    fields = {
        "event": "reply_finished",
        "room": watch.room_id,
        "reply": reply_id,
        "model": watch.model,
        "tokens": None,
        "chunks": watch.chunks,
        "first_token_s": None
        if watch.first_token is None
        else round(watch.first_token - watch.started, 3),
        "duration_s": round(duration, 3),
        "outcome": outcome,
        "error_kind": watch.error_kind,
    }
    text = " ".join(f"{key}={_text(value)}" for key, value in fields.items() if key != "event")
    logger.info("reply finished: %s", text, extra={"fields": fields})


def _text(value: object) -> str:
    return "null" if value is None else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (DJANGO_LOG_FORMAT=json); a record's `fields` become keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry |= fields
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
