from django.urls import path

from chat.consumers import ChatConsumer
from chat.consumers_list import RoomListConsumer

websocket_urlpatterns = [
    path("ws/chat/<int:pk>/", ChatConsumer.as_asgi()),
    path("ws/rooms/", RoomListConsumer.as_asgi()),
]
