"""Alembic migrations; installed as the package `etl.migrations` (see pyproject.toml)."""
