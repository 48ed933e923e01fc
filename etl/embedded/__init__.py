"""A PostgreSQL backend that starts the embedded server on first connection.

With ``DATABASE_URL`` unset, settings point here. Commands that never touch the
database (``etl upstream``, ``etl --help``) then never start PostgreSQL, and every
process that does connect registers with pgserver, which stops the server when the last
of them exits.
"""
