"""Budgets in the admin: each user's own budgets and spending today and this month,
each room's spending (chat.admin's RoomAdmin shows these columns), and the ledger."""

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chat.budget_models import Charge, UserBudget, day_start, month_start


def _spent(**match: object) -> dict[str, Coalesce]:
    """Annotations: the tokens charged to what `match` names, today and this month (UTC)."""
    now = timezone.now()
    totals = {}
    for name, since in (("spent_today", day_start(now)), ("spent_month", month_start(now))):
        charges = (
            Charge.objects.filter(at__gte=since, **match)
            .order_by()
            .values(*match)
            .annotate(total=Sum("tokens"))
            .values("total")
        )
        totals[name] = Coalesce(Subquery(charges), 0)
    return totals


class SpendingColumns:
    """`spent_today` and `spent_this_month` columns for a model charges point at."""

    # The Charge field that points at this admin's model, and what it points at.
    charge_field, pk_field = "", "pk"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return queryset.annotate(**_spent(**{self.charge_field: OuterRef(self.pk_field)}))

    @admin.display(description=_("tokens today"), ordering="spent_today")
    def spent_today(self, obj: object) -> int:
        return getattr(obj, "spent_today", 0)

    @admin.display(description=_("tokens this month"), ordering="spent_month")
    def spent_this_month(self, obj: object) -> int:
        return getattr(obj, "spent_month", 0)


@admin.register(UserBudget)
class UserBudgetAdmin(SpendingColumns, admin.ModelAdmin):
    """Every user who ever asked has a row (a claim locks it); add one to set a budget first."""

    charge_field = "user_id"
    pk_field = "user_id"
    list_display = [
        "user",
        "tokens_per_day",
        "tokens_per_month",
        "unlimited",
        "spent_today",
        "spent_this_month",
    ]
    list_filter = ["unlimited"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]


@admin.register(Charge)
class ChargeAdmin(admin.ModelAdmin):
    """The ledger, to read: it is written by the replies and recaps themselves."""

    list_display = [
        "at",
        "user",
        "room",
        "kind",
        "reply_id",
        "model",
        "tokens",
        "settled",
        "estimated",
    ]
    list_filter = ["kind", "settled", "estimated"]
    search_fields = ["user__username", "room__name"]
    date_hierarchy = "at"
    list_select_related = ["user", "room"]

    def get_readonly_fields(self, request: HttpRequest, obj: Charge | None = None) -> list[str]:
        return [field.name for field in Charge._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
