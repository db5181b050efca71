from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.utils.translation import gettext_lazy as _

from chat.models import Message, Room


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["name", "system_prompt", "ai_answers"]
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 5}),
            "ai_answers": forms.RadioSelect,
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Left out (an older form, a script), the room answers every message.
        self.fields["ai_answers"].required = False

    def clean_ai_answers(self) -> str:
        return self.cleaned_data["ai_answers"] or Room.AiAnswers.EVERY


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
        content.widget.attrs["maxlength"] = str(limit)


class MemberForm(forms.Form):
    """Share a room with another user."""

    username = forms.CharField(label=_("Username"), max_length=150)
