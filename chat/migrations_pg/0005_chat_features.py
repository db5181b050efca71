from importlib import import_module

Migration = import_module("chat.migrations.0005_chat_features").Migration
