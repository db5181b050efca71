"""Search indexes only final messages (chat.search never shows a streaming one).

A streaming reply is saved about once a second, and each save used to re-index
its whole text: O(n²) over a reply. Now a message enters the index when it
stops streaming, and leaves it (with the text it was indexed with) when it is
edited, restarted or deleted.

SQLite: the FTS5 triggers skip streaming rows, and the index is refilled from
the final rows (a 'rebuild' would read the streaming ones too). A later
migration that rebuilds chat_message on SQLite (Django copies the table) drops
the triggers: recreate them after it, from SQLITE_TRIGGERS.
PostgreSQL: the trigram index becomes partial, so a streaming save never
touches it; chat.search's `status <> 'streaming'` lets the planner use it.
"""

from django.db import migrations

FINAL = "status <> 'streaming'"

SQLITE_TRIGGERS = [
    "CREATE TRIGGER chat_message_fts_insert AFTER INSERT ON chat_message "
    f"WHEN new.{FINAL} BEGIN "
    "INSERT INTO chat_message_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER chat_message_fts_delete AFTER DELETE ON chat_message "
    f"WHEN old.{FINAL} BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); END",
    # Django's save() writes every column, so the WHEN clause, not the column
    # list, keeps a save that changes neither text nor finality from re-indexing.
    "CREATE TRIGGER chat_message_fts_update AFTER UPDATE OF content, status ON chat_message "
    f"WHEN (old.{FINAL} OR new.{FINAL}) AND (old.content IS NOT new.content "
    f"OR old.{FINAL} IS NOT new.{FINAL}) BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, content) "
    f"SELECT 'delete', old.id, old.content WHERE old.{FINAL}; "
    "INSERT INTO chat_message_fts(rowid, content) "
    f"SELECT new.id, new.content WHERE new.{FINAL}; END",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS chat_message_fts_update",
    "DROP TRIGGER IF EXISTS chat_message_fts_delete",
    "DROP TRIGGER IF EXISTS chat_message_fts_insert",
]
SQLITE_FORWARD = [
    *SQLITE_DROP,
    *SQLITE_TRIGGERS,
    "INSERT INTO chat_message_fts(chat_message_fts) VALUES ('delete-all')",
    f"INSERT INTO chat_message_fts(rowid, content) SELECT id, content FROM chat_message "
    f"WHERE {FINAL}",
]
# Migration 0005's triggers and its whole-table index.
SQLITE_BACKWARD = [
    *SQLITE_DROP,
    "CREATE TRIGGER chat_message_fts_insert AFTER INSERT ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER chat_message_fts_delete AFTER DELETE ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER chat_message_fts_update AFTER UPDATE OF content ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); "
    "INSERT INTO chat_message_fts(rowid, content) VALUES (new.id, new.content); END",
    "INSERT INTO chat_message_fts(chat_message_fts) VALUES ('rebuild')",
]
POSTGRESQL_FORWARD = [
    "DROP INDEX chat_message_content_trgm",
    "CREATE INDEX chat_message_content_trgm ON chat_message "
    f"USING gin (content gin_trgm_ops) WHERE {FINAL}",
]
POSTGRESQL_BACKWARD = [
    "DROP INDEX chat_message_content_trgm",
    "CREATE INDEX chat_message_content_trgm ON chat_message USING gin (content gin_trgm_ops)",
]


def _statements(schema_editor, *, sqlite: list[str], postgresql: list[str]) -> list[str]:
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        return sqlite
    if connection.vendor == "postgresql":
        # Migration 0005 made the index only where pg_trgm was available.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'chat_message_content_trgm'")
            return postgresql if cursor.fetchone() else []
    return []


def search_index_final_only(apps, schema_editor) -> None:
    for statement in _statements(
        schema_editor, sqlite=SQLITE_FORWARD, postgresql=POSTGRESQL_FORWARD
    ):
        schema_editor.execute(statement)


def search_index_whole(apps, schema_editor) -> None:
    for statement in _statements(
        schema_editor, sqlite=SQLITE_BACKWARD, postgresql=POSTGRESQL_BACKWARD
    ):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0008_message_client_id"),
    ]

    operations = [
        migrations.RunPython(search_index_final_only, search_index_whole),
    ]
