"""The service's database: SQLAlchemy models, sessions, Alembic migrations."""
