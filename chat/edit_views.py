"""The owner's *Edit and share* page: the room's settings, members and token budget.

Its invite links have their own views (chat.invite_views). Each card posts with htmx
and gets back only itself; without scripts, a refused post shows the whole page again.
"""

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from chat import budgets, invites, selectors, services, usage
from chat.forms import InviteForm, MemberForm, RoomBudgetForm, RoomForm
from chat.models import Room
from chat.pages import HtmxHttpRequest, go_to_room, room_owned_or_403


@require_http_methods(["GET", "POST"])
def room_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    room = room_owned_or_403(request=request, pk=pk)
    form = RoomForm(request.POST or None, instance=room)
    if request.method == "POST":
        # ModelForm validation writes the new values onto `room`; the service
        # compares them with the stored row.
        if form.is_valid():
            # A new prompt deletes the conversation: say how much, and save only once confirmed.
            clears = room.messages.count() if "system_prompt" in form.changed_data else 0
            if clears and request.POST.get("confirm_reset") != str(clears):
                if request.htmx:
                    context = {"form": form, "room": room, "confirm_reset": clears}
                    return render(request, "chat/room_form.html#form", context)
                context = _edit_page(room, form=form) | {"confirm_reset": clears}
                return render(request, "chat/room_form.html", context)
            services.room_update(room=room, **form.cleaned_data)
            if clears:
                messages.success(request, _prompt_changed(clears))
            return go_to_room(request=request, room=room)
        if request.htmx:
            return render(request, "chat/room_form.html#form", {"form": form, "room": room})
    return render(request, "chat/room_form.html", _edit_page(room, form=form))


def _prompt_changed(count: int) -> str:
    return ngettext(
        "The system prompt changed: %(count)d message was deleted for everyone, "
        "and the conversation starts again.",
        "The system prompt changed: %(count)d messages were deleted for everyone, "
        "and the conversation starts again.",
        count,
    ) % {"count": count}


@require_POST
def room_member_add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    room = room_owned_or_403(request=request, pk=pk)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            services.room_member_add(room=room, username=form.cleaned_data["username"])
        except services.MemberError as exc:
            form.add_error("username", str(exc))
        else:
            form = MemberForm()
    return _members(request, room, form)


@require_POST
def room_member_remove(request: HtmxHttpRequest, pk: int, user_id: int) -> HttpResponse:
    room = room_owned_or_403(request=request, pk=pk)
    services.room_member_remove(room=room, user_id=user_id)
    return _members(request, room, MemberForm())


def _members(request: HtmxHttpRequest, room: Room, form: MemberForm) -> HttpResponse:
    context = _edit_page(room, member_form=form)
    if request.htmx:
        return render(request, "chat/room_form.html#members", context)
    if form.errors:  # a plain form post: the page again, with what was wrong
        return render(request, "chat/room_form.html", context)
    return redirect("chat:room_edit", pk=room.pk)


@require_POST
def room_budget(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Save the room's budget; an invalid one is shown with its error, and nothing saved."""
    room = room_owned_or_403(request=request, pk=pk)
    form = RoomBudgetForm(request.POST)
    saved = form.is_valid()
    if saved:
        budgets.room_budget_set(room=room, tokens=form.cleaned_data["monthly_token_budget"])
        if not request.htmx:
            return redirect("chat:room_edit", pk=room.pk)
    # Saved, the card shows the stored budget; refused, what was typed and why.
    context = _edit_page(room, budget_form=None if saved else form) | {"budget_saved": saved}
    if request.htmx:
        return render(request, "chat/room_form.html#budget", context)
    # Without scripts, the whole edit page again, the error shown in the budget card.
    return render(request, "chat/room_form.html", context)


def _edit_page(
    room: Room,
    *,
    form: RoomForm | None = None,
    member_form: MemberForm | None = None,
    budget_form: RoomBudgetForm | None = None,
) -> dict[str, Any]:
    """Everything the edit page shows; a card that was posted passes its bound form."""
    initial = {"monthly_token_budget": room.monthly_token_budget}
    return {
        "room": room,
        "form": form or RoomForm(instance=room),
        "member_form": member_form or MemberForm(),
        "members": selectors.room_members(room=room),
        "invite_form": InviteForm(),
        "invite_links": invites.invite_links(room=room),
        "budget_form": budget_form or RoomBudgetForm(initial=initial),
        "room_usage": usage.room_usage(room=room),
    }
