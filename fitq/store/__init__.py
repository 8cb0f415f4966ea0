"""The job store: SQLAlchemy 2 models, the engine, the repository (every query) and Alembic."""
