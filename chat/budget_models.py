"""Token budgets per user, and the ledger of what each reply spent (chat.budgets)."""

from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


def day_start(now: datetime) -> datetime:
    """The start of `now`'s day in UTC, when daily budgets renew."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    """The start of `now`'s month in UTC, when monthly budgets renew."""
    return day_start(now).replace(day=1)


class UserBudget(models.Model):
    """One user's budgets, when the administrator sets other ones than the settings'.

    Its row is also what a claim locks (select_for_update) while it weighs the
    user's spending, so two processes cannot both let the last question through.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="token_budget",
        verbose_name=_("user"),
    )
    # None: the setting (CHAT_USER_TOKENS_PER_DAY, CHAT_USER_TOKENS_PER_MONTH).
    tokens_per_day = models.PositiveBigIntegerField(
        _("tokens a day"),
        null=True,
        blank=True,
        help_text=_("Empty: CHAT_USER_TOKENS_PER_DAY."),
    )
    tokens_per_month = models.PositiveBigIntegerField(
        _("tokens a month"),
        null=True,
        blank=True,
        help_text=_("Empty: CHAT_USER_TOKENS_PER_MONTH."),
    )
    unlimited = models.BooleanField(
        _("unlimited"),
        default=False,
        help_text=_("No daily or monthly budget for this user, whatever the settings say."),
    )

    class Meta:
        verbose_name = _("user budget")
        verbose_name_plural = _("user budgets")

    def __str__(self) -> str:
        return f"budget of user {self.user_id}"


class Charge(models.Model):
    """Tokens one reply spent, charged to the person whose question it answers, or
    one recap (Catch me up, chat.recaps), charged to the person who asked for it.

    Written at the claim as a reservation (the estimated prompt plus the reply
    ceiling), then replaced by what the server reported, or the estimate, when
    the reply ends. A ledger: it outlives the reply and the room it was spent in.
    """

    class Kind(models.TextChoices):
        REPLY = "reply", _("reply")
        RECAP = "recap", _("recap")

    kind = models.CharField(_("spent on"), max_length=10, choices=Kind.choices, default=Kind.REPLY)
    # Not a foreign key: a charge stays when its reply is deleted (a new prompt).
    # None for a recap, which is never saved.
    reply_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("user"),
    )
    room = models.ForeignKey(
        "chat.Room",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="charges",
        verbose_name=_("room"),
    )
    model = models.CharField(_("model"), max_length=200, blank=True)
    prompt_tokens = models.PositiveBigIntegerField(_("prompt tokens"))
    completion_tokens = models.PositiveBigIntegerField(_("reply tokens"))
    tokens = models.PositiveBigIntegerField(_("tokens"))
    # Characters the reply had when claimed (Continue): only later text is its own.
    text_before = models.PositiveIntegerField(default=0)
    # False while the reply runs: the tokens are the reservation.
    settled = models.BooleanField(_("settled"), default=False)
    # Settled from the estimate: the server reported no usage.
    estimated = models.BooleanField(_("estimated"), default=False)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("charge")
        verbose_name_plural = _("charges")
        indexes = [
            models.Index(fields=["user", "at"], name="charge_user_at"),
            models.Index(fields=["room", "at"], name="charge_room_at"),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.RECAP:
            return f"{self.tokens} tokens for a recap"
        return f"{self.tokens} tokens for reply {self.reply_id}"
