from importlib import import_module

Migration = import_module("chat.migrations.0004_shared_rooms").Migration
