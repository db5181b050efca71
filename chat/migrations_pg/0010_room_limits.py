from importlib import import_module

Migration = import_module("chat.migrations.0010_room_limits").Migration
