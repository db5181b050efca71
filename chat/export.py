"""A room as a file: Markdown to read, JSON to process. Both hold the same data."""

import json
from typing import Any

from django.utils.text import slugify

from chat import feedback, llm, usage
from chat.models import Message, Room

FORMATS = {"md": "text/markdown; charset=utf-8", "json": "application/json"}


def export_filename(*, room: Room, format: str) -> str:
    # slugify keeps Korean letters; the room id keeps two "Untitled" rooms apart.
    return f"{slugify(room.name, allow_unicode=True) or 'room'}-{room.pk}.{format}"


def message_data(message: Message) -> dict[str, Any]:
    cost = usage.reply_cost(reply=message)
    return {
        "id": message.pk,
        "role": message.role,
        "author": message.author.get_username() if message.author else None,
        "created_at": message.created_at.isoformat(),
        "content": message.content,
        "status": message.status,
        "error": message.error,
        "sources": message.sources,
        "model": message.model or None,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "cost_usd": str(cost) if cost is not None else None,
    }


def answered_by(*, room: Room, messages: list[Message]) -> list[str]:
    """The models whose replies the room holds, in order of first reply; with none yet,
    the one that would answer now (the offline demo when no model is configured)."""
    models = dict.fromkeys(m.model for m in messages if m.model)
    return list(models) or [llm.model_name(model=room.model)]


def room_json(*, room: Room, messages: list[Message]) -> str:
    given = feedback.feedback_by_message(message_ids=[message.pk for message in messages])
    data = {
        "room": {
            "id": room.pk,
            "name": room.name,
            "system_prompt": room.system_prompt,
            # The room's setting; `answered_by` is what actually replied.
            "model": room.model,
            "answered_by": answered_by(room=room, messages=messages),
            "temperature": room.temperature,
        },
        "messages": [
            message_data(message) | _feedback(message, given.get(message.pk, []))
            for message in messages
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


def _feedback(message: Message, given: list[dict[str, str]]) -> dict[str, Any]:
    """A reply's feedback, each reader's rating ("up" or "down") and comment."""
    return {"feedback": given} if message.role == Message.Role.ASSISTANT else {}


def room_markdown(*, room: Room, messages: list[Message]) -> str:
    lines = [f"# {room.name}", ""]
    if room.system_prompt:
        lines += ["System prompt:", "", *_quoted(room.system_prompt), ""]
    models = ", ".join(answered_by(room=room, messages=messages))
    lines += [f"Model: {models}, temperature {room.temperature}", ""]
    for message in messages:
        data = message_data(message)
        who = data["author"] or ("assistant" if message.role == Message.Role.ASSISTANT else "user")
        if data["model"]:
            who += f" ({data['model']})"
        lines += [f"## {who}, {data['created_at']}", "", message.content or "*(no text)*", ""]
        if message.status != Message.Status.COMPLETE:
            error = f": {message.error}" if message.error else ""
            lines += [f"Status: {message.status}{error}", ""]
        if message.sources:
            lines += ["Sources:", ""]
            for source in message.sources:
                label = " ".join(filter(None, [source.get("number"), source.get("title")]))
                lines.append(f"- [{label}]({source['url']})" if source.get("url") else f"- {label}")
            lines.append("")
        if message.role == Message.Role.ASSISTANT and message.status != Message.Status.STREAMING:
            if message.usage_known:
                cost = f", ${data['cost_usd']}" if data["cost_usd"] else ""
                tokens = f"{data['prompt_tokens']} prompt, {data['completion_tokens']} reply"
                lines += [f"Tokens: {tokens}{cost}", ""]
            else:
                lines += ["Tokens: unknown", ""]
    return "\n".join(lines)


def _quoted(text: str) -> list[str]:
    return [f"> {line}" if line else ">" for line in text.splitlines()]
