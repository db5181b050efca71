"""The address daphne prints at start-up, from its own command line."""

import pytest

from chat.apps import daphne_url


@pytest.mark.parametrize(
    ("argv", "url"),
    [
        (["/app/.venv/bin/daphne", "config.asgi:application"], "http://127.0.0.1:8000/"),
        (["/x/daphne", "-b", "127.0.0.1", "-p", "9001", "app"], "http://127.0.0.1:9001/"),
        (["/x/bin/daphne", "-p", "9001", "--ping-interval", "10", "app"], "http://127.0.0.1:9001/"),
        (["/x/daphne/__main__.py", "-b", "0.0.0.0", "-p", "8000", "app"], "http://127.0.0.1:8000/"),
        (["/x/bin/daphne", "-b", "::", "app"], "http://[::1]:8000/"),
        (["/x/bin/daphne", "-b", "chat.internal", "app"], "http://chat.internal:8000/"),
        (["/x/bin/daphne", "-u", "/run/chat.sock", "app"], None),
        (["/x/bin/daphne", "-e", "ssl:443:privateKey=key.pem", "app"], None),
        (["manage.py", "migrate"], None),
        ([], None),
    ],
)
def test_the_url_to_open(argv, url):
    assert daphne_url(argv) == url
