"""What every page view shares: the typed request, finding the asked-for room, and
leaving a page, whether htmx posted the form or the browser did."""

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from chat import selectors
from chat.models import Room


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    # LoginRequiredMiddleware lets only logged-in users reach the views that read it.
    user: User


def room_or_404(*, request: HtmxHttpRequest, pk: int) -> Room:
    """The room, if the user is in it; someone else's room is as invisible as a missing one."""
    room = selectors.room_get(pk=pk, user=request.user)
    if room is None:
        raise Http404
    return room


def room_owned_or_403(*, request: HtmxHttpRequest, pk: int) -> Room:
    """The room, if the user owns it: a member is refused, a stranger sees no room."""
    room = room_or_404(request=request, pk=pk)
    if room.owner_id != request.user.pk:
        raise PermissionDenied
    return room


def go_to_room(*, request: HtmxHttpRequest, room: Room) -> HttpResponse:
    # An htmx form swaps fragments; leaving the page needs a client redirect.
    if request.htmx:
        return HttpResponseClientRedirect(room.get_absolute_url())
    return redirect(room)


def go_to_list(*, request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(reverse("chat:room_list"))
    return redirect("chat:room_list")
