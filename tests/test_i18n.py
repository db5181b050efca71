"""Korean and English pages, chosen by the browser's Accept-Language."""

import gettext
import re

import pytest
from django.conf import settings

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
