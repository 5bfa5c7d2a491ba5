"""Runtimes behind one small protocol: a :class:`~visionserve.backends.base.Session`."""
