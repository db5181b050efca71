from importlib import import_module

Migration = import_module("chat.migrations.0007_message_status_index").Migration
