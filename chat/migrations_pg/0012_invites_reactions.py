from importlib import import_module

Migration = import_module("chat.migrations.0012_invites_reactions").Migration
