"""The benchmark's smallest load, through its real code path: checks loss, not timings."""

from pathlib import Path

import pytest

from bench.replies import marker_indices
from bench.scenarios import Load, Variant, run_stream
from bench.stack import Database

pytestmark = pytest.mark.integration

SMOKE = Load("smoke", rooms=1, tabs_per_room=10, tokens=40, rate=100)


@pytest.mark.slow
def test_every_tab_shows_the_whole_reply_once(tmp_path: Path):
    database = Database(tmp_path, rooms=SMOKE.rooms, users=SMOKE.tabs_per_room)
    run = run_stream(database, SMOKE, Variant(), client_procs=1, workdir=tmp_path)

    assert run["tabs"] == 10
    assert run["tokens_never_shown"] == 0
    assert run["updates_lost"] == 0
    assert run["updates_duplicated"] == 0
    assert run["tabs_unfinished"] == 0
    assert run["tabs_wrong_text"] == 0
    assert run["latency_ms"]["samples"] == 10 * 40


@pytest.mark.slow
def test_a_long_markdown_reply_is_tracked_by_its_markers(tmp_path: Path):
    # S8's Korean reply, faster: every tab must show every marker and end with all of them.
    load = Load("smoke-S8", rooms=1, tabs_per_room=5, tokens=0, rate=400, reply="markdown-ko")
    database = Database(tmp_path, rooms=load.rooms, users=load.tabs_per_room)
    run = run_stream(database, load, Variant(), client_procs=1, workdir=tmp_path)

    assert run["tabs"] == 5
    assert run["tokens_expected"] == 5 * len(marker_indices("markdown-ko")) > 5 * 100
    assert run["tokens_never_shown"] == 0
    assert run["tabs_unfinished"] == run["tabs_wrong_text"] == 0
    assert run["updates_lost"] == run["updates_duplicated"] == 0
    text_bytes = len("".join(load.chunks).encode())
    assert run["bytes_per_tab"] > run["final_fragment_bytes"] > text_bytes
