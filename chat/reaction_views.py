"""Reactions over HTTP: a page that reconnects asks for its messages' reactions, which
may have changed while its socket was down (the socket's catch-up carries messages only)."""

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from chat import reactions, selectors
from chat.models import Message
from chat.pages import HtmxHttpRequest, room_or_404

# As many as a page shows after a few "Show earlier".
MAX_IDS = 500


@require_GET
def room_reactions(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """`#reactions-<id>` (out of band) for each of `?ids=1,2,3` in the room, as stored now."""
    room = room_or_404(request=request, pk=pk)
    asked = [int(part) for part in request.GET.get("ids", "").split(",") if part.isdecimal()]
    shown = selectors.room_messages(room=room).filter(pk__in=asked[:MAX_IDS])
    ids = list(shown.values_list("pk", flat=True))
    found = reactions.reactions_by_message(message_ids=ids)
    html = "".join(
        reactions.reactions_html(
            message=Message(pk=pk, room_id=room.pk), groups=found.get(pk, []), oob=True
        )
        for pk in ids
    )
    return HttpResponse(html)
