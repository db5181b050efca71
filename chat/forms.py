from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from chat import llm
from chat.budgets import BUDGET_MAX
from chat.models import Feedback, Message, Room


class RoomForm(forms.ModelForm):
    """A room's name, prompt, model, temperature and spend limits.

    The model is picked from the server's list (llm.models_list); when the
    server lists none or cannot be asked, any name is accepted. The reply
    ceiling and context window may only be lower than the settings' (chat.limits).
    """

    class Meta:
        model = Room
        fields = [
            "name",
            "system_prompt",
            "model",
            "temperature",
            "ai_answers",
            "max_reply_tokens",
            "context_tokens",
        ]
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 5}),
            "temperature": forms.NumberInput(attrs={"step": "0.1", "min": "0", "max": "2"}),
            "ai_answers": forms.RadioSelect,
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        offered = llm.models_list()
        field = self.fields["model"]
        if offered:
            # The configured default and the room's own stay valid choices, so
            # saving a room does not force a new model on it.
            names = dict.fromkeys([*offered, settings.OPENAI_MODEL, self.instance.model])
            self.fields["model"] = forms.ChoiceField(
                label=field.label,
                choices=[(name, name) for name in names if name],
                initial=field.initial,
                error_messages={
                    "invalid_choice": _("The model server has no model called “%(value)s”.")
                },
            )
        elif not llm.is_configured():
            field.help_text = _("No model server is configured: the offline demo model answers.")
        else:
            field.help_text = _("The model server did not list its models: type a model's name.")
        # Left out or blank, they keep the room's values (a new room's are the settings').
        self.fields["model"].required = self.fields["temperature"].required = False
        # Left out (an older form, a script), the room answers every message.
        self.fields["ai_answers"].required = False
        self._limits_explain()

    def _limits_explain(self) -> None:
        ceiling, window = settings.CHAT_MAX_REPLY_TOKENS, settings.CHAT_CONTEXT_TOKENS
        for name, most, help_text in (
            (
                "max_reply_tokens",
                ceiling,
                _("The longest reply, 1 to %(most)s tokens. Empty: %(most)s."),
            ),
            (
                "context_tokens",
                window,
                _(
                    "What one request may hold, prompt and reply, up to %(most)s tokens; "
                    "the oldest messages are left out to fit. Empty: %(most)s."
                ),
            ),
        ):
            field = self.fields[name]
            field.help_text = help_text % {"most": f"{most:,}"}
            # clean_<name> says what is allowed, for zero and negatives too.
            field.validators = [v for v in field.validators if not isinstance(v, MinValueValidator)]
            field.widget.attrs.update(min="1", max=str(most))

    def clean_model(self) -> str:
        return self.cleaned_data["model"] or self.instance.model

    def clean_temperature(self) -> float:
        temperature = self.cleaned_data["temperature"]
        return self.instance.temperature if temperature is None else temperature

    def clean_ai_answers(self) -> str:
        return self.cleaned_data["ai_answers"] or Room.AiAnswers.EVERY

    def clean_max_reply_tokens(self) -> int | None:
        value = self.cleaned_data["max_reply_tokens"]
        ceiling = settings.CHAT_MAX_REPLY_TOKENS
        if value is not None and not 0 < value <= ceiling:
            raise ValidationError(
                _("A reply may take 1 to %(most)s tokens on this server."),
                params={"most": f"{ceiling:,}"},
            )
        return value

    def clean_context_tokens(self) -> int | None:
        value = self.cleaned_data["context_tokens"]
        window = settings.CHAT_CONTEXT_TOKENS
        if value is not None and not 0 < value <= window:
            raise ValidationError(
                _("A context window may hold 1 to %(most)s tokens on this server."),
                params={"most": f"{window:,}"},
            )
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        window = cleaned.get("context_tokens")
        ceiling = cleaned.get("max_reply_tokens") or settings.CHAT_MAX_REPLY_TOKENS
        # The window holds the prompt and the reply: it must leave room for a prompt.
        if window is not None and window <= ceiling and "max_reply_tokens" not in self.errors:
            self.add_error(
                "context_tokens",
                ValidationError(
                    _(
                        "The context window must be larger than the reply ceiling "
                        "(%(ceiling)s tokens), or no prompt fits."
                    ),
                    params={"ceiling": f"{ceiling:,}"},
                ),
            )
        return cleaned


class MessageForm(forms.ModelForm):
    """Validates a chat message, whether it came from a page or a websocket frame."""

    class Meta:
        model = Message
        fields = ["content"]
        labels = {"content": _("Message")}
        widgets = {
            "content": forms.Textarea(
                attrs={
                    "rows": 2,
                    "placeholder": _("Message… (Enter sends, Shift+Enter adds a line)"),
                }
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read the limit per form, not at import, so it follows the settings.
        limit = settings.CHAT_MESSAGE_MAX_LENGTH
        content = self.fields["content"]
        content.required = True  # the model allows blank for streaming replies; people may not
        content.validators.append(MaxLengthValidator(limit))
        # Not maxlength, which cuts a long paste silently: the page says it is too long.
        content.widget.attrs["data-limit"] = str(limit)


class MemberForm(forms.Form):
    """Share a room with another user."""

    username = forms.CharField(label=_("Username"), max_length=150)


BUDGET_ERRORS = {
    "invalid": _("Enter a whole number of tokens, such as 100000, or leave it empty."),
    "min_value": _("A budget is at least 1 token; leave it empty for no budget."),
    "max_value": _("A budget is at most %(limit_value)s tokens a month."),
}


class RoomBudgetForm(forms.Form):
    """The room's monthly token budget (chat.budgets), set by its owner."""

    monthly_token_budget = forms.IntegerField(
        label=_("Tokens a month"),
        required=False,
        min_value=1,
        max_value=BUDGET_MAX,
        error_messages=BUDGET_ERRORS,
        help_text=_(
            "What the AI's replies in this room may spend a month (UTC), whoever asks. "
            "Empty: no budget."
        ),
        widget=forms.NumberInput(attrs={"min": "1", "step": "1"}),
    )


class InviteForm(forms.Form):
    """An invite link's expiry, uses and whether it may create accounts (chat.invites)."""

    days = forms.IntegerField(label=_("Expires after (days)"), min_value=1, max_value=365)
    max_uses = forms.IntegerField(
        label=_("Uses allowed"),
        min_value=1,
        max_value=10_000,
        required=False,
        help_text=_("Leave empty for any number of people."),
    )
    allows_signup = forms.BooleanField(
        label=_("People without an account may create one through it"), required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read per form, so it follows the settings.
        self.fields["days"].initial = settings.CHAT_INVITE_DAYS


class FeedbackForm(forms.Form):
    """A reader's verdict on one of the AI's replies (chat.feedback)."""

    rating = forms.ChoiceField(choices=Feedback.Rating.choices)
    comment = forms.CharField(
        label=_("Comment (optional)"), required=False, max_length=2000, widget=forms.Textarea
    )
