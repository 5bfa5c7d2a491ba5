"""Alembic migrations of the jobs database; run by :meth:`visionserve.storage.db.Database.upgrade`."""
