"""Who may act in a room, asked at the moment of each action, not only when a socket opened.

Two checks. Every frame a socket sends first passes `socket_check`: its session
still exists and still vouches for an active user (a logout, a password change
or a deactivation ends that), and the user still has the room. Then every write
asks `room_for_action` inside its own transaction, which also hands it the
room's settings as stored now; so nothing is saved for someone who lost the room
between the two.
"""

from importlib import import_module

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef
from django.http import HttpRequest

from chat.models import Room


class SignedOut(Exception):
    """The socket's session no longer vouches for an active user."""


class NotMember(Exception):
    """The user is neither the room's owner nor one of its members any more."""


class RoomGone(Exception):
    """The room was deleted."""


def socket_check(*, session_key: str | None, user_id: int, room_id: int) -> Room:
    """The room as stored now; SignedOut, RoomGone or NotMember unless this socket's
    user may still act in it."""
    request = HttpRequest()
    # A fresh store: the socket's own copy of the session was read when it opened.
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # Checks the session exists, its user is active and its password hash is current.
    if auth.get_user(request).pk != user_id:
        raise SignedOut
    return room_for_action(room_id=room_id, user_id=user_id, lock=False)


def room_for_action(*, room_id: int, user_id: int, lock: bool = True) -> Room:
    """The room as stored now, if this user may act in it. Call it inside the action's
    transaction: with `lock` it holds the room's row (on PostgreSQL) until the commit.
    One query: every frame a socket sends asks it."""
    rooms = Room.objects.select_for_update() if lock else Room.objects
    found = (
        rooms.filter(pk=room_id)
        .annotate(
            user_active=Exists(get_user_model().objects.filter(pk=user_id, is_active=True)),
            is_member=Exists(
                Room.members.through.objects.filter(room_id=OuterRef("pk"), user_id=user_id)
            ),
        )
        .first()
    )
    if found is None:
        raise RoomGone
    if not found.user_active:
        raise SignedOut
    if found.owner_id != user_id and not found.is_member:
        raise NotMember
    return found
