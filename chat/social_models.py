"""Getting people into a room and hearing from them: invite links (chat.invites),
reactions (chat.reactions) and feedback on replies (chat.feedback)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Invite(models.Model):
    """A link that makes whoever opens it a member of the room (chat.invites).

    The link carries `key` signed with the site's secret, so a link cannot be
    guessed from another or altered; the key is kept to show the owner the link again."""

    room = models.ForeignKey("chat.Room", on_delete=models.CASCADE, related_name="invites")
    key = models.CharField(max_length=32, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"))
    # None: as many people as open it before it expires.
    max_uses = models.PositiveIntegerField(_("uses allowed"), null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    # Whether someone without an account may create one through it while sign-up is closed.
    allows_signup = models.BooleanField(_("may create an account"), default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"invite {self.pk} to room {self.room_id}"


class Reaction(models.Model):
    """One person's emoji on a message (chat.reactions); the same again takes it back."""

    message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="one_reaction_per_user_emoji"
            )
        ]

    def __str__(self) -> str:
        return f"{self.emoji} on message {self.message_id}"


class Feedback(models.Model):
    """One person's verdict on one of the AI's replies (chat.feedback)."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Rating(models.TextChoices):
        UP = "up", _("Helpful")
        DOWN = "down", _("Not helpful")

    message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.CharField(_("rating"), max_length=4, choices=Rating.choices)
    comment = models.TextField(_("comment"), blank=True)

    class Meta:
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_user_reply")
        ]

    def __str__(self) -> str:
        return f"{self.rating} on reply {self.message_id}"
