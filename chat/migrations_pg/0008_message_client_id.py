from importlib import import_module

Migration = import_module("chat.migrations.0008_message_client_id").Migration
