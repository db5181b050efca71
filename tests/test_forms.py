import pytest

from chat.forms import MessageForm, RoomForm


@pytest.mark.parametrize("content", ["", "   ", "\n\t "])
def test_message_form_requires_text(content):
    form = MessageForm(data={"content": content})
    assert not form.is_valid()
    assert form.errors["content"] == ["This field is required."]


def test_message_form_strips_and_keeps_inner_lines():
    form = MessageForm(data={"content": "  line one\nline two  "})
    assert form.is_valid()
    assert form.cleaned_data["content"] == "line one\nline two"


def test_message_form_limit_follows_the_setting(settings):
    settings.CHAT_MESSAGE_MAX_LENGTH = 10
    assert MessageForm(data={"content": "x" * 10}).is_valid()
    form = MessageForm(data={"content": "x" * 11})
    assert form.errors["content"] == ["Ensure this value has at most 10 characters (it has 11)."]
    assert form.fields["content"].widget.attrs["maxlength"] == "10"


def test_room_form_requires_a_name_but_not_a_prompt():
    assert RoomForm(data={"name": "Room", "system_prompt": ""}).is_valid()
    assert RoomForm(data={"name": "", "system_prompt": "x"}).errors == {
        "name": ["This field is required."]
    }
