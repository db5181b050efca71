from importlib import import_module

Migration = import_module("chat.migrations.0004_message_owner").Migration
