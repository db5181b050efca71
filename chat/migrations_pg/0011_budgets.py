from importlib import import_module

Migration = import_module("chat.migrations.0011_budgets").Migration
