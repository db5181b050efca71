"""One log line per reply: its fields, text or JSON, and never the conversation."""

import asyncio
import contextlib
import json
import logging
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from chat import observability
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.servers import ROOT
from tests.wsutil import receive_until, reply_finished

QUESTION = "my private question"
ANSWER = "a confidential answer"


def reply_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "chat.replies"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reply_logs_one_line_with_its_figures_and_not_its_text(
    room_factory, connect, model, caplog, settings
):
    caplog.set_level(logging.INFO, logger="chat.replies")
    room = await sync_to_async(room_factory)()
    model.queue(Reply(ANSWER))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps({"content": QUESTION}))
    await receive_until(tab, reply_finished)
    await replies_finished()

    (record,) = reply_lines(caplog)
    fields = record.fields
    assert fields["room"] == room.pk
    assert fields["model"] == "test-model"
    assert fields["outcome"] == "complete"
    assert fields["tokens"] is None
    assert fields["chunks"] == 3
    assert 0 <= fields["first_token_s"] <= fields["duration_s"]
    text = record.getMessage()
    assert f"room={room.pk} reply={fields['reply']} model=test-model tokens=null" in text
    assert "outcome=complete" in text
    as_json = observability.JsonFormatter().format(record)
    assert json.loads(as_json)["reply"] == fields["reply"]
    for line in (text, as_json):
        assert QUESTION not in line and ANSWER not in line
        assert settings.OPENAI_API_KEY not in line


@pytest.mark.asyncio
async def test_a_reply_task_that_dies_counts_as_failed(caplog):
    caplog.set_level(logging.INFO, logger="chat.replies")
    failed = REGISTRY.get_sample_value("chat_replies_total", {"outcome": "failed"}) or 0

    async def dies() -> None:
        observability.reply_started(room_id=1, reply_id=-1, model="m")
        raise RuntimeError("boom")

    task = asyncio.create_task(dies())
    with contextlib.suppress(RuntimeError):
        await task
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop

    assert REGISTRY.get_sample_value("chat_replies_total", {"outcome": "failed"}) == failed + 1
    (record,) = reply_lines(caplog)
    assert record.fields["outcome"] == "failed"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_log_format_prints_one_json_object_per_line():
    result = manage(
        "shell",
        "-c",
        "from chat import observability as o; "
        "o.reply_started(room_id=7, reply_id=42, model='m'); "
        "o.reply_finished(reply_id=42, outcome='stopped')",
        DJANGO_LOG_FORMAT="json",
    )
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "reply_finished" in line]
    entry = json.loads(line)
    assert entry["logger"] == "chat.replies" and entry["level"] == "INFO"
    assert {k: entry[k] for k in ("room", "reply", "model", "tokens", "outcome")} == {
        "room": 7,
        "reply": 42,
        "model": "m",
        "tokens": None,
        "outcome": "stopped",
    }


def test_an_unknown_log_format_is_refused_saying_which_are_known():
    result = manage("check", DJANGO_LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "DJANGO_LOG_FORMAT must be text or json, not 'xml'" in result.stderr
