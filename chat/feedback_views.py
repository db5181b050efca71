"""The 👍/👎 form under each of the AI's replies, posted with htmx (chat.feedback)."""

from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chat import feedback, rendering
from chat.forms import FeedbackForm
from chat.models import Feedback, Message
from chat.pages import HtmxHttpRequest, room_or_404


@require_POST
def feedback_give(request: HtmxHttpRequest, pk: int, message_id: int) -> HttpResponse:
    room = room_or_404(request=request, pk=pk)
    form = FeedbackForm(request.POST)
    given: Feedback | None = None
    error = ""
    if not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
    else:
        try:
            given = feedback.feedback_give(
                user=request.user, room_id=room.pk, message_id=message_id, **form.cleaned_data
            )
        except feedback.NotAReply as refused:
            error = refused.text()
    if not request.htmx:
        if error:
            return HttpResponseBadRequest(error, content_type="text/plain; charset=utf-8")
        return redirect(room)
    # htmx swaps only a 2xx answer: the error is shown in the form it replaces.
    message = Message(pk=message_id, room_id=room.pk, role=Message.Role.ASSISTANT)
    context = {"message": message, "given": given, "error": error}
    return render(request, f"{rendering.ROOM_TEMPLATE}#feedback", context)
