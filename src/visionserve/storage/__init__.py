"""Persistence of jobs: the database (SQLAlchemy, Alembic migrations) and the artifact stores.

The only package that imports SQLAlchemy.
"""
