from importlib import import_module

Migration = import_module("chat.migrations.0014_charge_recaps").Migration
