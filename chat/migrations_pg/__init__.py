"""Migrations for PostgreSQL (settings.MIGRATION_MODULES picks this folder).

Only the document table differs between backends, so every other migration is
shared: the file here imports chat/migrations' file of the same name. After
`makemigrations` (run on SQLite) adds chat/migrations/NNNN_name.py, add
NNNN_name.py here with the same one import. tests/test_migrations.py checks
that both folders hold the same names and match the models.
"""
