"""Korean and English pages, chosen by the browser's Accept-Language."""

import gettext
import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from chat.models import Message
from tests.conftest import ORIGIN, session_cookie
from tests.fakeopenai import Reply
from tests.wsutil import messages_in, receive_until, reply_finished

pytestmark = pytest.mark.django_db

KOREAN = {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9,en;q=0.5"}
CATALOG = settings.BASE_DIR / "locale" / "ko" / "LC_MESSAGES"
_ESCAPE = re.compile(r"\\(.)")


def test_a_korean_browser_gets_korean_pages(client, room_factory):
    room_factory(name="연말정산")
    html = client.get("/chat/", **KOREAN).content.decode()
    assert '<html lang="ko">' in html
    assert "<h1>대화방</h1>" in html and "새 방" in html
    assert "메시지 0개" in html


def test_korean_form_errors_come_from_django_and_from_us(client):
    html = client.post("/chat/new/", {"name": ""}, HTTP_HX_REQUEST="true", **KOREAN)
    text = html.content.decode()
    assert "필수 항목입니다." in text  # Django's own catalogue
    assert "시스템 프롬프트" in text and "방 만들기" in text  # ours


def test_other_browsers_get_english(client):
    html = client.get("/chat/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9").content.decode()
    assert '<html lang="en">' in html and "<h1>Rooms</h1>" in html


def _po_entries() -> list[tuple[str, str, bool]]:
    """(msgid, first msgstr, fuzzy) for every entry of django.po but the header."""
    text = (CATALOG / "django.po").read_text(encoding="utf-8")
    entries = []
    for block in text.split("\n\n"):

        def joined(keyword: str, block: str = block) -> str:
            match = re.search(rf'^{keyword} ((?:".*"\n?)+)', block, re.M)
            parts = re.findall(r'"(.*)"', match[1]) if match else []
            return _ESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], "".join(parts))

        msgid = joined("msgid")
        if msgid:
            entries.append((msgid, joined(r"msgstr(?:\[0\])?"), "#, fuzzy" in block))
    return entries


def test_every_string_is_translated_and_the_compiled_catalogue_is_current():
    entries = _po_entries()
    assert len(entries) > 50
    with (CATALOG / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)
    for msgid, msgstr, fuzzy in entries:
        assert msgstr and not fuzzy, f"untranslated: {msgid!r}"
        # A stale django.mo (forgot compilemessages) misses or differs here.
        assert catalogue.gettext(msgid) == msgstr or catalogue.ngettext(msgid, msgid, 1) == msgstr


@pytest.mark.parametrize(
    ("error", "korean"),
    [
        ("The model did not answer in time.", "모델이 제시간에 응답하지 않았습니다."),
        ("The model server answered with an error (HTTP 502).", "(HTTP 502)."),
        ("The server stopped while writing this reply.", "서버가 멈췄습니다."),
        ("Something unforeseen, kept as it was.", "Something unforeseen, kept as it was."),
    ],
)
def test_a_saved_reply_error_is_shown_in_the_readers_language(
    client, room_factory, message_factory, error, korean
):
    room = room_factory()
    message_factory(room, role=Message.Role.ASSISTANT, status=Message.Status.ERROR, error=error)
    english = client.get(room.get_absolute_url()).content.decode()
    assert f'<p class="message__error" role="alert">{error}</p>' in english
    html = client.get(room.get_absolute_url(), **KOREAN).content.decode()
    shown = re.search(r'<p class="message__error" role="alert">(.*?)</p>', html)[1]
    assert korean in shown
    if korean != error:
        assert shown != error and re.search("[가-힣]", shown)


async def _tab(room, user, language: bytes | None = None) -> WebsocketCommunicator:
    from config.asgi import application

    headers = [ORIGIN, await sync_to_async(session_cookie)(user)]
    if language:
        headers.append((b"accept-language", language))
    tab = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/", headers=headers)
    connected, code = await tab.connect()
    assert connected, code
    return tab


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_each_tab_gets_the_room_in_its_own_language(user, room_factory, model):
    """Broadcasts carry every language; what one tab alone is sent is in its language."""
    room = await sync_to_async(room_factory)()
    korean = await _tab(room, user, b"ko-KR,ko;q=0.9,en;q=0.5")
    english = await _tab(room, user, b"en-US,en;q=0.9")
    model.queue(Reply("x", status=500, first_token_delay=0.2))
    try:
        await korean.send_to(text_data=json.dumps({"content": "안녕하세요"}))
        frames = {
            korean: await receive_until(korean, reply_finished),
            english: await receive_until(english, reply_finished),
        }
        for tab, stop, error, retry in [
            (korean, "중지", "모델 서버가 오류로 응답했습니다 (HTTP 500).", "다시 시도"),
            (english, "Stop", "The model server answered with an error (HTTP 500).", "Retry"),
        ]:
            shown = [m for frame in frames[tab] for m in messages_in(frame)]
            streaming = next(m for m in shown if m.status == "streaming")
            assert f">{stop}</button>" in streaming.html
            assert shown[-1].status == "error"
            assert error in shown[-1].html and f">{retry}</button>" in shown[-1].html
        # The answer to the send, and a refusal, in that tab's language.
        assert any('data-outcome="sent"' in frame for frame in frames[korean])
        await korean.send_to(text_data=json.dumps({"action": "dance"}))
        assert "알 수 없는 동작입니다." in await korean.receive_from()
        await english.send_to(text_data=json.dumps({"action": "dance"}))
        assert "Unknown action." in await english.receive_from()
        # Saved in English, whichever language the sender reads.
        reply = await Message.objects.aget(room=room, role=Message.Role.ASSISTANT)
        assert reply.error == "The model server answered with an error (HTTP 500)."
    finally:
        await korean.disconnect()
        await english.disconnect()
