"""The database: schema, engine, dialect helpers, raw asyncpg access, migrations, LISTEN/NOTIFY,
and keyset pagination. May import `config` and `errors` only.
"""
