"""Durable asynchronous jobs: many images, one request, results and artifacts kept for later.

A job is data (:mod:`~visionserve.jobs.model`), its lifecycle is functions
(:mod:`~visionserve.jobs.service`, :mod:`~visionserve.jobs.processing`) and where items run is a
:class:`~visionserve.jobs.runner.JobRunner`: an embedded thread pool by default, Celery workers
(:mod:`~visionserve.jobs.celery_app`) to scale out. Storage is behind the ports of
:mod:`~visionserve.jobs.store`, implemented in :mod:`visionserve.storage`.
"""
