from importlib import import_module

Migration = import_module("chat.migrations.0009_message_client_id").Migration
