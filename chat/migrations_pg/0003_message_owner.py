from importlib import import_module

Migration = import_module("chat.migrations.0003_message_owner").Migration
