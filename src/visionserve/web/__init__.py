"""The web page's files: plain HTML, CSS and JavaScript modules (no build step), served by
:mod:`visionserve.api.web` from :data:`STATIC_DIR`."""

from __future__ import annotations

from pathlib import Path

#: The folder of ``index.html`` and the page's modules and styles.
STATIC_DIR = Path(__file__).resolve().parent / "static"
