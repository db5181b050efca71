from importlib import import_module

Migration = import_module("chat.migrations.0009_search_index_final_only").Migration
