"""Alembic environment of the lineage database (``Store.open`` upgrades to the newest revision)."""
