import sys

# sqlite-vec needs enable_load_extension and a recent SQLite (vec0 KNN), which
# the platform's sqlite3 may lack: use the bundled pysqlite3 build where it exists.
# This runs before Django loads its SQLite backend, for manage.py, ASGI and pytest alike.
try:
    import pysqlite3

    sys.modules["sqlite3"] = pysqlite3
    sys.modules["sqlite3.dbapi2"] = pysqlite3.dbapi2
except ImportError:
    pass
