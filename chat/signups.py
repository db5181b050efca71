"""Who may create an account: anyone while CHAT_SIGNUP is "open"; while it is
"closed", only someone who opened an invite link that allows it (chat.invites)."""

from django.conf import settings
from django.http import HttpRequest

from chat import invites


def signup_open(*, request: HttpRequest) -> bool:
    return settings.CHAT_SIGNUP == "open" or invites.invite_allows_signup(request=request)
