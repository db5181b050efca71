from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


# Temperatures OpenAI-compatible servers accept.
TEMPERATURE_MIN, TEMPERATURE_MAX = 0.0, 2.0


def room_model_default() -> str:
    return settings.OPENAI_MODEL


def room_temperature_default() -> float:
    return settings.OPENAI_TEMPERATURE


class Room(TimestampedModel):
    """A conversation with the model, seen live by its owner and the members they add."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="owned_rooms",
        verbose_name=_("owner"),
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="shared_rooms", blank=True, verbose_name=_("members")
    )
    name = models.CharField(_("name"), max_length=100)
    system_prompt = models.TextField(
        _("system prompt"),
        blank=True,
        help_text=_("Instructions the model follows in this room."),
    )
    # Read from the settings when the room is created, then the room's own.
    model = models.CharField(_("model"), max_length=200, default=room_model_default)
    temperature = models.FloatField(
        _("temperature"),
        default=room_temperature_default,
        validators=[MinValueValidator(TEMPERATURE_MIN), MaxValueValidator(TEMPERATURE_MAX)],
        help_text=_("From 0 (focused) to 2 (varied)."),
    )

    class AiAnswers(models.TextChoices):
        EVERY = "every", _("Every message")
        MENTIONED = "mentioned", _("Only messages starting with @ai or !")

    # In "mentioned" mode people talk among themselves and call the AI in.
    ai_answers = models.CharField(
        _("the AI answers"), max_length=10, choices=AiAnswers.choices, default=AiAnswers.EVERY
    )
    # Unset, the settings' (chat.limits): a room may only ask for less.
    max_reply_tokens = models.PositiveIntegerField(
        _("reply ceiling (tokens)"),
        null=True,
        blank=True,
        help_text=_("The longest reply, in tokens. Empty: the server's limit."),
    )
    context_tokens = models.PositiveIntegerField(
        _("context window (tokens)"),
        null=True,
        blank=True,
        help_text=_(
            "What the model may read and write in one request, in tokens; the oldest "
            "messages are left out to fit. Empty: the server's window."
        ),
    )
    # Tokens the room's replies may spend a calendar month (UTC); None: no budget (chat.budgets).
    monthly_token_budget = models.PositiveBigIntegerField(
        _("monthly token budget"), null=True, blank=True
    )

    # Counts the changes to the room's messages its tabs are told of; each message
    # keeps the count of its last change, so a reconnecting tab asks for what
    # changed since the count it has seen (chat.broadcast, selectors.room_changes).
    version = models.PositiveBigIntegerField(default=0, editable=False)
    # The count at which its history was last cleared.
    reset_version = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("chat:room_detail", kwargs={"pk": self.pk})


class Message(TimestampedModel):
    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        STREAMING = "streaming", _("Streaming")
        COMPLETE = "complete", _("Complete")
        ERROR = "error", _("Error")
        # Someone pressed Stop; the partial text is kept.
        STOPPED = "stopped", _("Stopped")
        # The process generating it died; the partial text is kept.
        INTERRUPTED = "interrupted", _("Interrupted")
        # A user message waiting for the AI while another reply streams (chat.turns).
        QUEUED = "queued", _("Queued")

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    # Who wrote a user message; replies have none.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True, help_text=_("Why the reply failed, shown in the room."))
    # Bumped by every broadcast update; pages drop updates older than what they show.
    seq = models.PositiveIntegerField(default=0)
    # The room's version at this message's last change (Room.version).
    version = models.PositiveBigIntegerField(default=0, editable=False)
    # Documents a reply was grounded on, shown under it: [{"title", "number", "url"}].
    sources = models.JSONField(default=list, blank=True)
    # A reply's model and token counts as the server reported them; None is unknown.
    model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # True when the model stopped at the reply ceiling (finish_reason "length"):
    # the reply says so and offers Continue. Nullable with no default, so adding
    # it does not make SQLite copy the table (which drops the search triggers).
    length_limited = models.BooleanField(null=True, blank=True, editable=False)
    # The server process writing a streaming reply (chat.leases.PROCESS_ID): when
    # its lease lapses, any live process marks the reply interrupted.
    owner = models.CharField(max_length=100, blank=True, default="")
    # The id the page gave a user message when it sent it: a repeated send (a
    # double Enter, a resend after a lost answer) is saved once, in any process.
    client_id = models.UUIDField(null=True, blank=True, editable=False)
    # A question the AI skipped because a budget was spent ("day", "month", "room"):
    # nullable with no default, so SQLite adds the column without copying the table.
    skipped_for = models.CharField(  # noqa: DJ001 (null: see above)
        max_length=10, null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["room", "version"], name="message_room_version"),
            # The watchdog looks for streaming replies and queued questions twice a
            # second in every process: few rows, found without scanning the table.
            models.Index(fields=["status", "room"], name="message_status_room"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["room", "author", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="one_message_per_client_id",
            ),
            # Turn-taking: a room generates one reply at a time, across processes.
            models.UniqueConstraint(
                fields=["room"],
                condition=models.Q(status="streaming"),
                name="one_streaming_reply_per_room",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:50]}"

    @property
    def is_streaming(self) -> bool:
        return self.status == self.Status.STREAMING

    @property
    def usage_known(self) -> bool:
        return self.prompt_tokens is not None and self.completion_tokens is not None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


class RoomRead(models.Model):
    """When a user last had a room open: the room list counts newer messages as unread."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="reads")
    read_at = models.DateTimeField()
    # The read before the user last opened the room's page: what "New since you left"
    # and Catch me up count from (chat.unread). None: they had never opened it.
    since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="one_read_per_user_room")
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} read room {self.room_id} at {self.read_at}"


class Mention(models.Model):
    """A message naming a member of its room as @username (chat.mentions). Kept after
    it is read: the message shows its mentions from these rows for every reader."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The message's room, so a room list counts a user's mentions without joining messages.
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_mention_per_message_user")
        ]
        indexes = [models.Index(fields=["user", "room"], name="mention_user_room")]

    def __str__(self) -> str:
        return f"user {self.user_id} named in message {self.message_id}"


class ProcessLease(models.Model):
    """A server process's heartbeat, for deployments without Redis (chat.leases)."""

    process = models.CharField(max_length=100, primary_key=True)
    renewed_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.process


# Modules of their own: token budgets and the ledger of what replies spent
# (chat.budgets); invites, reactions and feedback (chat.social_models); the
# documents "!" questions and the search page draw on, as their storage depends
# on the database backend.
from chat.budget_models import Charge, UserBudget  # noqa: E402, F401
from chat.documents import TaxLawDocument  # noqa: E402, F401
from chat.social_models import Feedback, Invite, Reaction  # noqa: E402, F401
