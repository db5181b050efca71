from django.contrib import admin
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from chat.budget_admin import SpendingColumns
from chat.models import Feedback, Invite, Message, Room, TaxLawDocument


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


class FeedbackFilter(admin.SimpleListFilter):
    """Replies by the feedback readers gave them: "Not helpful" lists those to look at."""

    title = _("feedback")
    parameter_name = "feedback"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return list(Feedback.Rating.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in Feedback.Rating.values:
            return queryset
        given = Feedback.objects.filter(message=OuterRef("pk"), rating=self.value())
        return queryset.filter(Exists(given))


class FeedbackInline(admin.TabularInline):
    model = Feedback
    extra = 0
    fields = ["user", "rating", "comment", "updated_at"]
    readonly_fields = ["user", "rating", "comment", "updated_at"]


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
    list_filter = ["role", "status", FeedbackFilter]
    search_fields = ["content"]
    raw_id_fields = ["room"]
    inlines = [FeedbackInline]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["pk", "message", "user", "rating", "comment", "updated_at"]
    list_filter = ["rating"]
    raw_id_fields = ["message", "user"]


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["pk", "room", "created_by", "expires_at", "uses", "max_uses", "revoked_at"]
    fields = ["room", "created_by", "expires_at", "max_uses", "uses", "allows_signup", "revoked_at"]
    readonly_fields = ["room", "created_by", "uses"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A link is made in the room's Edit and share, which gives it its key.
        return False


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
