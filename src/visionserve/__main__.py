"""``python -m visionserve``: the same as the ``visionserve`` command."""

from visionserve.cli.main import main

main()
