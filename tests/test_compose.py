"""docker-compose.yml, the production topology, refuses unsafe defaults."""

import re

from tests.servers import ROOT

COMPOSE = (ROOT / "docker-compose.yml").read_text()


def variable(name: str) -> str:
    """The value the app's environment gives `name`, as written in the file."""
    found = re.findall(rf"^\s+{name}:(.*)$", COMPOSE, re.MULTILINE)
    assert len(found) == 1, f"{name} should be set once, in the app's environment"
    return found[0].strip()


def test_debug_is_off_unless_asked_for():
    assert variable("DJANGO_DEBUG") == "${DJANGO_DEBUG:-false}"


def test_compose_will_not_start_without_a_secret_key():
    # ${VAR:?message}: compose stops with the message when VAR is unset or empty.
    value = variable("DJANGO_SECRET_KEY")
    assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?set DJANGO_SECRET_KEY[^}]*\}", value), value
    assert "change-me" not in COMPOSE


def test_https_hardening_can_be_switched_off_only_from_outside():
    # No default here: unset, the settings' own (on with debug off) hold.
    for name in ("DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_COOKIES"):
        assert variable(name) == ""
