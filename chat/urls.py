from django.urls import path

from chat import edit_views, feedback_views, invite_views, reaction_views, views

app_name = "chat"

urlpatterns = [
    path("", views.room_list, name="room_list"),
    path("new/", views.room_new, name="room_new"),
    path("<int:pk>/", views.room_detail, name="room_detail"),
    path("<int:pk>/edit/", edit_views.room_edit, name="room_edit"),
    path("<int:pk>/leave/", views.room_leave, name="room_leave"),
    path("<int:pk>/delete/", views.room_delete, name="room_delete"),
    path("<int:pk>/messages/", views.room_messages_earlier, name="room_messages_earlier"),
    path("<int:pk>/export/", views.room_export, name="room_export"),
    path("<int:pk>/budget/", edit_views.room_budget, name="room_budget"),
    path("search/", views.message_search, name="search"),
    path("<int:pk>/members/", edit_views.room_member_add, name="room_member_add"),
    path(
        "<int:pk>/members/<int:user_id>/remove/",
        edit_views.room_member_remove,
        name="room_member_remove",
    ),
    path("<int:pk>/invites/", invite_views.invite_create, name="invite_create"),
    path(
        "<int:pk>/invites/<int:invite_id>/revoke/",
        invite_views.invite_revoke,
        name="invite_revoke",
    ),
    path("invite/<str:token>/", invite_views.invite_open, name="invite_open"),
    path(
        "<int:pk>/messages/<int:message_id>/feedback/",
        feedback_views.feedback_give,
        name="feedback_give",
    ),
    path("<int:pk>/reactions/", reaction_views.room_reactions, name="room_reactions"),
    path("docs/law/tax/", views.taxlaw_document_list, name="taxlaw_document_list"),
]
