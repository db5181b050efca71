from importlib import import_module

Migration = import_module("chat.migrations.0001_initial").Migration
