"""The rooms a user is in: the list, a new room, a room's page, its export and earlier
messages, leaving and deleting it, and searching messages and the tax-law documents.

The owner's *Edit and share* page is chat.edit_views.
"""

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from chat import (
    export,
    feedback,
    limits,
    llm,
    mentions,
    rag,
    ratelimit,
    reactions,
    selectors,
    services,
    unread,
    usage,
)
from chat import search as chat_search
from chat.documents import TaxLawDocument
from chat.forms import MessageForm, RoomForm
from chat.models import Message
from chat.pages import HtmxHttpRequest, go_to_list, go_to_room, room_or_404


@require_GET
def room_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "chat/room_list.html", {"rooms": selectors.room_list(user=request.user)})


@require_http_methods(["GET", "POST"])
def room_new(request: HtmxHttpRequest) -> HttpResponse:
    form = RoomForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            room = services.room_create(owner=request.user, **form.cleaned_data)
            return go_to_room(request=request, room=room)
        if request.htmx:
            return render(request, "chat/room_form.html#form", {"form": form})
    return render(request, "chat/room_form.html", {"form": form})


@require_GET
def room_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    room = room_or_404(request=request, pk=pk)
    # ?message=<id> (a search result) opens the room at that message, highlighted.
    found = _as_id(request.GET.get("message"))
    page = found and selectors.room_messages_page_from(room=room, message_id=found)
    found = found if page else None
    # Read before it is marked: the divider goes before what came since the last visit.
    since = unread.room_open_mark(room_id=room.pk, user_id=request.user.pk)
    first_unread = unread.first_unread(room=room, user_id=request.user.pk, since=since)
    if first_unread and unread.still_here(room_id=room.pk, user_id=request.user.pk):
        first_unread = None
    if first_unread is not None and not page:
        page = selectors.room_messages_page_from(room=room, message_id=first_unread.pk)
    page = page or selectors.room_messages_page(room=room)
    people = mentions.room_people(room=room)
    return render(
        request,
        "chat/room_detail.html",
        {
            **_extras(request, page.messages),
            "room": room,
            "page": page,
            "found": found,
            "first_unread": first_unread.pk if first_unread else None,
            "mention_names": [name for name in people if name != request.user.get_username()],
            "queue": selectors.room_queue(room_id=room.pk),
            "form": MessageForm(),
            "room_usage": usage.room_usage(room=room),
            "context_start": limits.context_start(room=room, shared=len(people) > 1),
        },
    )


@require_GET
def room_export(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The whole room as a download: ?format=md or ?format=json."""
    room = room_or_404(request=request, pk=pk)
    format = request.GET.get("format", "md")
    if format not in export.FORMATS:
        return HttpResponseBadRequest(
            "Unknown export format: use ?format=md or ?format=json.",
            content_type="text/plain; charset=utf-8",
        )
    messages = list(selectors.room_messages(room=room))
    render_as = export.room_markdown if format == "md" else export.room_json
    response = HttpResponse(
        render_as(room=room, messages=messages), content_type=export.FORMATS[format]
    )
    filename = export.export_filename(room=room, format=format)
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    return response


@require_GET
def message_search(request: HtmxHttpRequest) -> HttpResponse:
    found = chat_search.message_search(user=request.user, query=request.GET.get("q", ""))
    # Typing swaps only the results; a history restore needs the page.
    if request.htmx and not request.htmx.history_restore_request:
        template = "chat/search.html#results"
    else:
        template = "chat/search.html"
    return render(request, template, {"search": found})


@require_GET
def room_messages_earlier(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The page of messages before `before`, swapped in over the "Show earlier" button."""
    room = room_or_404(request=request, pk=pk)
    try:
        before = int(request.GET["before"])
    except (KeyError, ValueError):
        return HttpResponseBadRequest("?before=<message id> is required")
    page = selectors.room_messages_page(room=room, before=before)
    context = {
        **_extras(request, page.messages),
        "room": room,
        "page": page,
        "context_start": limits.context_start(room=room),
    }
    return render(request, "chat/room_detail.html#page", context)


@require_http_methods(["GET", "POST"])
def room_leave(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm; POST leaves, then the room list says so."""
    room = room_or_404(request=request, pk=pk)
    # The owner deletes their room instead; to them this page does not exist.
    if room.owner_id == request.user.pk:
        raise Http404
    if request.method == "GET":
        return render(request, "chat/room_leave.html", {"room": room})
    services.room_leave(room=room, user=request.user)
    messages.success(
        request, _("You left “%(name)s”. These are the rooms you are in.") % {"name": room.name}
    )
    return go_to_list(request=request)


@require_http_methods(["GET", "POST"])
def room_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm; POST deletes. Only the owner; to others it is a 404."""
    room = room_or_404(request=request, pk=pk)
    if room.owner_id != request.user.pk:
        raise Http404
    if request.method == "GET":
        return render(request, "chat/room_delete.html", {"room": room})
    services.room_delete(room=room)
    messages.success(request, _("“%(name)s” was deleted for everyone.") % {"name": room.name})
    return go_to_list(request=request)


@require_GET
async def taxlaw_document_list(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("query", "")
    # Each search's embedding is a model call: it counts toward CHAT_RATE_LIMIT, and
    # past it the search ranks by keywords alone.
    embed = True
    if query.strip() and llm.is_configured():
        embed = not await ratelimit.message_rate_hit(user_id=request.user.pk)
    search = await rag.taxlaw_search(query=query, embed=embed)
    # Typing in the search box swaps only the results; a history restore needs the page.
    if request.htmx and not request.htmx.history_restore_request:
        template = "chat/taxlaw_document_list.html#results"
    else:
        template = "chat/taxlaw_document_list.html"
    loaded = await TaxLawDocument.objects.aexists()
    return render(request, template, {"search": search, "loaded": loaded})


def _extras(request: HtmxHttpRequest, shown: list[Message]) -> dict:
    """What a page shows beside its messages: reactions, and this reader's feedback on
    its replies (a page of questions alone reads none)."""
    ids = [message.pk for message in shown]
    replies = [message.pk for message in shown if message.role == Message.Role.ASSISTANT]
    return {
        "reactions": reactions.reactions_by_message(message_ids=ids),
        "feedback": feedback.feedback_by_reader(user=request.user, message_ids=replies),
    }


def _as_id(value: str | None) -> int | None:
    return int(value) if value and value.isdecimal() and int(value) > 0 else None
