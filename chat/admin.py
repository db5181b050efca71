from django.contrib import admin

from chat.models import Message, Room


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["role", "status", "content", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "updated_at"]
    search_fields = ["name", "system_prompt"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["pk", "room", "role", "status", "created_at"]
    list_filter = ["role", "status"]
    search_fields = ["content"]
    raw_id_fields = ["room"]
