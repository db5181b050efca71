"""Who may create an account: the one place that decides (CHAT_SIGNUP)."""

from django.conf import settings
from django.http import HttpRequest


def signup_open(*, request: HttpRequest) -> bool:
    """Whether this request may create an account: with CHAT_SIGNUP "closed",
    accounts come from the administrator."""
    return settings.CHAT_SIGNUP == "open"
