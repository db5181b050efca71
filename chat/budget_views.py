"""The room's monthly token budget, set by its owner in *Edit and share*."""

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails

from chat import budgets, selectors, usage
from chat.forms import MemberForm, RoomForm
from chat.models import Room


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: User


ERRORS = {
    "invalid": _("Enter a whole number of tokens, such as 100000, or leave it empty."),
    "min_value": _("A budget is at least 1 token; leave it empty for no budget."),
    "max_value": _("A budget is at most %(limit_value)s tokens a month."),
}


class RoomBudgetForm(forms.Form):
    monthly_token_budget = forms.IntegerField(
        label=_("Tokens a month"),
        required=False,
        min_value=1,
        max_value=budgets.BUDGET_MAX,
        error_messages=ERRORS,
        help_text=_(
            "What the AI's replies in this room may spend a month (UTC), whoever asks. "
            "Empty: no budget."
        ),
        widget=forms.NumberInput(attrs={"min": "1", "step": "1"}),
    )


def budget_context(*, room: Room, form: RoomBudgetForm | None = None) -> dict[str, Any]:
    """What the budget card of the room's edit page shows: the form and this month's spending."""
    initial = {"monthly_token_budget": room.monthly_token_budget}
    return {
        "budget_form": form or RoomBudgetForm(initial=initial),
        "room_usage": usage.room_usage(room=room),
    }


@require_POST
def room_budget(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Save the room's budget; an invalid one is shown with its error, and nothing saved."""
    room = selectors.room_get(pk=pk, user=request.user)
    if room is None:
        raise Http404
    if room.owner_id != request.user.pk:
        raise PermissionDenied
    form = RoomBudgetForm(request.POST)
    saved = form.is_valid()
    if saved:
        budgets.room_budget_set(room=room, tokens=form.cleaned_data["monthly_token_budget"])
        form = RoomBudgetForm(initial={"monthly_token_budget": room.monthly_token_budget})
    if saved and not request.htmx:
        return redirect("chat:room_edit", pk=room.pk)
    context = {"room": room, "budget_saved": saved} | budget_context(room=room, form=form)
    if request.htmx:
        return render(request, "chat/room_form.html#budget", context)
    # Without scripts, the whole edit page again, the error shown in the budget card.
    context |= {
        "form": RoomForm(instance=room),
        "member_form": MemberForm(),
        "members": selectors.room_members(room=room),
    }
    return render(request, "chat/room_form.html", context)
