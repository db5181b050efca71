import pytest
from django.core.cache import cache

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
    assert form.fields["content"].widget.attrs["data-limit"] == "10"
    assert "maxlength" not in form.fields["content"].widget.attrs


def test_room_form_requires_a_name_but_not_a_prompt():
    assert RoomForm(data={"name": "Room", "system_prompt": ""}).is_valid()
    assert RoomForm(data={"name": "", "system_prompt": "x"}).errors == {
        "name": ["This field is required."]
    }


@pytest.fixture
def listed(model):
    """The tests' server lists two chat models (and the cache forgets earlier lists)."""
    cache.clear()
    model.models = ("fake-model", "other-model", "text-embedding-3-large")
    yield model
    cache.clear()


def room_data(**values) -> dict[str, str]:
    return {"name": "Room", "system_prompt": "", "model": "fake-model", "temperature": "1"} | values


def test_room_form_offers_the_server_s_models_and_the_default(listed):
    form = RoomForm()
    choices = [value for value, label in form.fields["model"].choices]
    assert choices == ["fake-model", "other-model", "test-model"]
    assert form["model"].initial == "test-model"
    assert form["temperature"].initial == 1.0


def test_room_form_saves_the_chosen_model_and_temperature(listed, user):
    form = RoomForm(data=room_data(model="other-model", temperature="0.2"))
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["model"], form.cleaned_data["temperature"]) == ("other-model", 0.2)


def test_room_form_refuses_a_model_the_server_does_not_have(listed):
    form = RoomForm(data=room_data(model="gpt-17"))
    assert form.errors == {"model": ["The model server has no model called “gpt-17”."]}


@pytest.mark.parametrize(
    ("temperature", "error"),
    [
        ("2.5", "Ensure this value is less than or equal to 2.0."),
        ("-0.1", "Ensure this value is greater than or equal to 0.0."),
        ("warm", "Enter a number."),
        ("nan", "Enter a number."),
    ],
)
def test_room_form_refuses_a_bad_temperature(listed, temperature, error):
    form = RoomForm(data=room_data(temperature=temperature))
    assert form.errors == {"temperature": [error]}


def test_room_form_takes_any_model_name_when_the_server_lists_none(listed):
    listed.models = ()
    form = RoomForm(data=room_data(model="llama3.1:8b"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["model"] == "llama3.1:8b"
    assert "did not list its models" in form.fields["model"].help_text


def test_room_form_takes_any_model_name_when_the_list_fails(listed):
    listed.models_status = 500
    assert RoomForm(data=room_data(model="my-local-model")).is_valid()


def test_room_form_keeps_a_room_s_model_the_server_no_longer_lists(listed, room_factory):
    room = room_factory(model="retired-model", temperature=0.7)
    form = RoomForm(data={"name": "Renamed", "system_prompt": ""}, instance=room)
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["model"], form.cleaned_data["temperature"]) == ("retired-model", 0.7)


def test_offline_the_model_field_says_the_demo_model_answers(settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    form = RoomForm(data=room_data(model="anything"))
    assert form.is_valid()
    assert "offline demo model answers" in form.fields["model"].help_text


# A room's spend limits: lower than the settings', or empty for theirs.


def limits_form(**limits: str) -> RoomForm:
    return RoomForm(data={"name": "Room", "system_prompt": "", **limits})


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0", "A reply may take 1 to 4,096 tokens on this server."),
        ("-5", "A reply may take 1 to 4,096 tokens on this server."),
        ("4097", "A reply may take 1 to 4,096 tokens on this server."),
        ("lots", "Enter a whole number."),
        ("1.5", "Enter a whole number."),
    ],
)
def test_a_reply_ceiling_outside_the_servers_is_refused_inline(settings, value, error):
    settings.CHAT_MAX_REPLY_TOKENS, settings.CHAT_CONTEXT_TOKENS = 4096, 128_000
    assert limits_form(max_reply_tokens=value).errors == {"max_reply_tokens": [error]}


@pytest.mark.parametrize("value", ["0", "-1", "128001", "many"])
def test_a_context_window_outside_the_servers_is_refused_inline(settings, value):
    settings.CHAT_MAX_REPLY_TOKENS, settings.CHAT_CONTEXT_TOKENS = 4096, 128_000
    errors = limits_form(context_tokens=value).errors
    assert list(errors) == ["context_tokens"]


def test_a_window_must_leave_room_for_a_prompt_beside_the_reply(settings):
    settings.CHAT_MAX_REPLY_TOKENS, settings.CHAT_CONTEXT_TOKENS = 4096, 128_000
    assert limits_form(context_tokens="4096").errors == {
        "context_tokens": [
            "The context window must be larger than the reply ceiling (4,096 tokens), "
            "or no prompt fits."
        ]
    }
    assert limits_form(context_tokens="4096", max_reply_tokens="1000").is_valid()


def test_empty_limits_are_the_settings_and_lower_ones_are_kept(settings):
    settings.CHAT_MAX_REPLY_TOKENS, settings.CHAT_CONTEXT_TOKENS = 4096, 128_000
    empty = limits_form(max_reply_tokens="", context_tokens="")
    assert empty.is_valid()
    assert (empty.cleaned_data["max_reply_tokens"], empty.cleaned_data["context_tokens"]) == (
        None,
        None,
    )
    lower = limits_form(max_reply_tokens="512", context_tokens="16000")
    assert lower.is_valid()
    assert (lower.cleaned_data["max_reply_tokens"], lower.cleaned_data["context_tokens"]) == (
        512,
        16000,
    )
