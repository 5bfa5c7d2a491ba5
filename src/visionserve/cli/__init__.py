"""The ``visionserve`` command line."""
