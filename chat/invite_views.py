"""Invite links in *Edit and share*, and the page a link opens (chat.invites)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from chat import invites, signups
from chat.forms import InviteForm
from chat.models import Room
from chat.pages import HtmxHttpRequest, room_owned_or_403


@require_POST
def invite_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    room = room_owned_or_403(request=request, pk=pk)
    form = InviteForm(request.POST)
    if form.is_valid():
        invites.invite_create(room=room, created_by=request.user, **form.cleaned_data)
        form = InviteForm()
    return _invites(request, room, form)


@require_POST
def invite_revoke(request: HtmxHttpRequest, pk: int, invite_id: int) -> HttpResponse:
    room = room_owned_or_403(request=request, pk=pk)
    invites.invite_revoke(room=room, invite_id=invite_id)
    return _invites(request, room, InviteForm())


@login_not_required
@require_GET
def invite_open(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """Signed in: join and open the room. Signed out: log in or sign up first."""
    if not request.user.is_authenticated:
        try:
            invite = invites.invite_check(token=token)
        except invites.InviteRefused as refused:
            return _refused(request, refused)
        invites.invite_remember(request=request, token=token)
        context = {"room": invite.room, "can_sign_up": signups.signup_open(request=request)}
        return render(request, "chat/invite.html", context)
    try:
        room = invites.invite_accept(token=token, user=request.user)
    except invites.InviteRefused as refused:
        return _refused(request, refused)
    finally:
        invites.invite_forget(request=request)
    return redirect(room)


def _invites(request: HtmxHttpRequest, room: Room, form: InviteForm) -> HttpResponse:
    if not request.htmx:
        if form.errors:
            messages.error(request, _("The invite link was not created: check its settings."))
        return redirect("chat:room_edit", pk=room.pk)
    context = {"room": room, "invite_links": invites.invite_links(room=room), "invite_form": form}
    return render(request, "chat/room_form.html#invites", context)


def _refused(request: HtmxHttpRequest, refused: invites.InviteRefused) -> HttpResponse:
    return render(request, "chat/invite.html", {"refused": refused.text()}, status=refused.status)
