from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from chat import rag, selectors, services
from chat.forms import MessageForm, RoomForm
from chat.models import Room


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
def room_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "chat/room_list.html", {"rooms": selectors.room_list()})


@require_http_methods(["GET", "POST"])
def room_new(request: HtmxHttpRequest) -> HttpResponse:
    form = RoomForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            room = services.room_create(**form.cleaned_data)
            return _go_to(request, room)
        if request.htmx:
            return render(request, "chat/room_form.html#form", {"form": form})
    return render(request, "chat/room_form.html", {"form": form})


@require_GET
def room_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    room = get_object_or_404(Room, pk=pk)
    services.reply_recover_stale(room=room)
    return render(
        request,
        "chat/room_detail.html",
        {"room": room, "messages": selectors.room_messages(room=room), "form": MessageForm()},
    )


@require_http_methods(["GET", "POST"])
def room_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    room = get_object_or_404(Room, pk=pk)
    form = RoomForm(request.POST or None, instance=room)
    if request.method == "POST":
        # ModelForm validation writes the new values onto `room`; the service
        # compares them with the stored row.
        if form.is_valid():
            services.room_update(room=room, **form.cleaned_data)
            return _go_to(request, room)
        if request.htmx:
            return render(request, "chat/room_form.html#form", {"form": form, "room": room})
    return render(request, "chat/room_form.html", {"form": form, "room": room})


@require_GET
async def taxlaw_document_list(request: HtmxHttpRequest) -> HttpResponse:
    search = await rag.taxlaw_search(query=request.GET.get("query", ""))
    # Typing in the search box swaps only the results; a history restore needs the page.
    if request.htmx and not request.htmx.history_restore_request:
        template = "chat/taxlaw_document_list.html#results"
    else:
        template = "chat/taxlaw_document_list.html"
    return render(request, template, {"search": search})


def _go_to(request: HtmxHttpRequest, room: Room) -> HttpResponse:
    # An HTMX form swaps fragments; leaving the page needs a client redirect.
    if request.htmx:
        return HttpResponseClientRedirect(room.get_absolute_url())
    return redirect(room)
