"""Who may act in a room, asked at the moment of each action, not only when a socket opened.

Two checks. Every frame a socket sends first passes `socket_check`: its session
still exists and still vouches for an active user (a logout, a password change
or a deactivation ends that), and the user still has the room. Then every write
asks `room_for_action` inside its own transaction, which also hands it the
room's settings as stored now; so nothing is saved for someone who lost the room
between the two.
"""

import functools
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from chat.models import Room


class SignedOut(Exception):
    """The socket's session no longer vouches for an active user."""


class NotMember(Exception):
    """The user is neither the room's owner nor one of its members any more."""


class RoomGone(Exception):
    """The room was deleted."""


def socket_check(*, session_key: str | None, user_id: int, room_id: int) -> Room:
    """The room as stored now; RoomGone, SignedOut or NotMember unless this socket's
    user may still act in it. One query, as it runs for every frame: the room, with
    the session's stored data and the user's password hash beside it (the checks
    django.contrib.auth.get_user makes, on the database sessions settings.py uses)."""
    found = (
        _rooms(room_id=room_id, user_id=user_id, lock=False)
        .annotate(
            session_data=Subquery(
                Session.objects.filter(
                    session_key=session_key or "", expire_date__gt=timezone.now()
                ).values("session_data")[:1]
            ),
            password=Subquery(
                get_user_model().objects.filter(pk=user_id, is_active=True).values("password")[:1]
            ),
        )
        .first()
    )
    if found is None:
        raise RoomGone
    if not _vouches(
        session_data=found.session_data,
        password=found.password,
        user_id=user_id,
        secrets=(settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS),
    ):
        raise SignedOut
    return _allowed(found, user_id=user_id)


@functools.lru_cache(maxsize=4096)
def _vouches(
    *, session_data: str | None, password: str | None, user_id: int, secrets: tuple[str, ...]
) -> bool:
    """Whether this stored session still logs in `user_id` whose password hash is
    `password` (None: no such active user). Cached (`secrets` is in the key), since a
    socket sends the same pair on every frame and decoding it is the check's costliest
    part."""
    if session_data is None or password is None:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore().decode(session_data)
    if session.get(SESSION_KEY) != str(user_id):
        return False
    if session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return False
    user = get_user_model()(pk=user_id, password=password)
    stored = session.get(HASH_SESSION_KEY) or ""
    # A hash made with a retired secret still counts, as it does for a page.
    return any(
        constant_time_compare(stored, made)
        for made in (user.get_session_auth_hash(), *user.get_session_auth_fallback_hash())
    )


def room_for_action(*, room_id: int, user_id: int, lock: bool = True) -> Room:
    """The room as stored now, if this user may act in it. Call it inside the action's
    transaction: with `lock` it holds the room's row (on PostgreSQL) until the commit."""
    active = Exists(get_user_model().objects.filter(pk=user_id, is_active=True))
    found = _rooms(room_id=room_id, user_id=user_id, lock=lock).annotate(user_active=active).first()
    if found is None:
        raise RoomGone
    if not found.user_active:
        raise SignedOut
    return _allowed(found, user_id=user_id)


def _rooms(*, room_id: int, user_id: int, lock: bool) -> "QuerySet[Any]":
    rooms = Room.objects.select_for_update() if lock else Room.objects
    return rooms.filter(pk=room_id).annotate(
        is_member=Exists(
            Room.members.through.objects.filter(room_id=OuterRef("pk"), user_id=user_id)
        ),
    )


def _allowed(room: Any, *, user_id: int) -> Room:
    if room.owner_id != user_id and not room.is_member:
        raise NotMember
    return room
