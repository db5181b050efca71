from django.contrib import admin
from django.http import HttpRequest

from chat.budget_admin import SpendingColumns
from chat.models import Message, Room, TaxLawDocument


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = [
        "role",
        "status",
        "content",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "created_at",
    ]
    readonly_fields = ["created_at"]


@admin.register(Room)
class RoomAdmin(SpendingColumns, admin.ModelAdmin):
    charge_field = "room_id"
    list_display = [
        "name",
        "model",
        "temperature",
        "monthly_token_budget",
        "spent_today",
        "spent_this_month",
        "created_at",
        "updated_at",
    ]
    search_fields = ["name", "system_prompt"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "room",
        "role",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "created_at",
    ]
    list_filter = ["role", "status"]
    search_fields = ["content"]
    raw_id_fields = ["room"]


@admin.register(TaxLawDocument)
class TaxLawDocumentAdmin(admin.ModelAdmin):
    """The loaded documents, to read. Read-only: pyhub-rag validates a document by
    counting its tokens with tiktoken, which downloads its tables on first use, and
    saving one embeds it; load documents with `manage.py load_jsonl` instead."""

    list_display = ["pk", "number", "title"]
    fields = ["number", "title", "page_content", "metadata"]
    readonly_fields = ["number", "title", "page_content", "metadata"]
    list_per_page = 50

    @admin.display(description="문서번호")
    def number(self, document: TaxLawDocument) -> str:
        return document.number

    @admin.display(description="제목")
    def title(self, document: TaxLawDocument) -> str:
        return document.title

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: TaxLawDocument | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: TaxLawDocument | None = None
    ) -> bool:
        return False
