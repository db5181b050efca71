from importlib import import_module

Migration = import_module("chat.migrations.0007_search_index_final_only").Migration
