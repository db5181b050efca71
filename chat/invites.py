"""Invite links: a room's owner makes one, and whoever opens it becomes a member.

The link carries a random key signed with the site's secret (django.core.signing):
an altered link fails its signature, and one link says nothing of another. A use
is counted by one conditional UPDATE, so two people opening a one-use link at
once cannot both join. A signed-out visitor's link waits in their session while
they log in or sign up (chat.signups reads it when sign-up is closed).
"""

import datetime
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chat import roomlist
from chat.models import Invite, Room
from chat.turns.refusals import Refused

SALT = "chat.invite"
# Where a signed-out visitor's link waits until they have an account.
SESSION_KEY = "chat_invite"


class InviteRefused(Refused):
    """Nobody joins; `status` is the page's HTTP status."""

    status = 410


class Tampered(InviteRefused):
    message = _("This invite link is not valid: it was changed or copied incompletely.")
    status = 400


class RoomGone(InviteRefused):
    message = _("This invite link's room no longer exists.")
    status = 404


class Revoked(InviteRefused):
    message = _("This invite link was revoked by the room's owner.")


class Expired(InviteRefused):
    message = _("This invite link has expired. Ask the room's owner for a new one.")


class UsedUp(InviteRefused):
    message = _("This invite link has been used as many times as it allows.")


def invite_token(*, invite: Invite) -> str:
    """What the link carries: the invite's key, signed."""
    return signing.Signer(salt=SALT).sign(invite.key)


def invite_create(
    *,
    room: Room,
    created_by: AbstractBaseUser,
    days: int | None = None,
    max_uses: int | None = None,
    allows_signup: bool = False,
) -> Invite:
    days = settings.CHAT_INVITE_DAYS if days is None else days
    return Invite.objects.create(
        room=room,
        created_by_id=created_by.pk,
        key=secrets.token_urlsafe(18),
        expires_at=timezone.now() + datetime.timedelta(days=days),
        max_uses=max_uses,
        allows_signup=allows_signup,
    )


def invite_links(*, room: Room) -> list[tuple[Invite, str]]:
    """The room's usable links, each with the path it opens."""
    return [
        (invite, reverse("chat:invite_open", kwargs={"token": invite_token(invite=invite)}))
        for invite in invite_active_list(room=room)
    ]


def invite_revoke(*, room: Room, invite_id: int) -> None:
    """Revoke one of the room's links; a link already revoked stays as it was."""
    room.invites.filter(pk=invite_id, revoked_at=None).update(revoked_at=timezone.now())


def invite_active_list(*, room: Room) -> QuerySet[Invite]:
    """The room's links that still let someone in, newest first."""
    return room.invites.filter(_usable(now=timezone.now())).order_by("-pk")


def invite_check(*, token: str) -> Invite:
    """The invite this link names, if it may still be used; else an InviteRefused."""
    try:
        key = signing.Signer(salt=SALT).unsign(token)
    except signing.BadSignature:
        raise Tampered from None
    invite = Invite.objects.select_related("room").filter(key=key).first()
    if invite is None:
        # A valid signature on a key we no longer hold: its room was deleted.
        raise RoomGone
    _refuse_unusable(invite)
    return invite


def invite_accept(*, token: str, user: AbstractBaseUser) -> Room:
    """Make `user` a member of the link's room, counting one use. The owner or a member
    opening it gets the room, and no use is counted."""
    with transaction.atomic():
        invite = invite_check(token=token)
        room = invite.room
        if room.owner_id == user.pk or room.members.filter(pk=user.pk).exists():
            return room
        # The use is counted only while the link is still usable, in one statement.
        counted = Invite.objects.filter(_usable(now=timezone.now()), pk=invite.pk).update(
            uses=F("uses") + 1
        )
        if not counted:
            invite.refresh_from_db()
            _refuse_unusable(invite)
            raise UsedUp
        room.members.add(user.pk)
        roomlist.room_changed_on_commit(room=room)
    return room


def invite_remember(*, request: HttpRequest, token: str) -> None:
    """Keep a signed-out visitor's link until they have logged in or signed up."""
    request.session[SESSION_KEY] = token


def invite_remembered(*, request: HttpRequest) -> str | None:
    token = request.session.get(SESSION_KEY)
    return token if isinstance(token, str) else None


def invite_forget(*, request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)


def invite_allows_signup(*, request: HttpRequest) -> bool:
    """Whether the link this visitor opened lets them create an account now."""
    token = invite_remembered(request=request)
    if token is None:
        return False
    try:
        return invite_check(token=token).allows_signup
    except InviteRefused:
        return False


def _usable(*, now: datetime.datetime) -> Q:
    return Q(revoked_at=None, expires_at__gt=now) & (Q(max_uses=None) | Q(uses__lt=F("max_uses")))


def _refuse_unusable(invite: Invite) -> None:
    if invite.revoked_at is not None:
        raise Revoked
    if invite.expires_at <= timezone.now():
        raise Expired
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        raise UsedUp
