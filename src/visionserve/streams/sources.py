"""Stream sources: which ones a server may open, and how a capture is opened.

A source string is one of

* ``rtsp://`` / ``rtsps://`` and ``http://`` / ``https://`` URLs (RTSP cameras, MJPEG cameras, video
  over HTTP). Their hosts pass the outbound policy of :mod:`visionserve.outbound` (setting
  ``stream_url_hosts``, private addresses only inside ``outbound_allow_networks``), and the capture
  connects to the address that was checked, re-resolved and re-checked at every (re)connection;
* a file name inside the video folder (``video_dir``): resolved (symlinks followed) and refused
  unless the result is a file inside that folder, so a request never names an arbitrary path;
* ``device:N`` (a local camera), only with ``stream_devices`` on.

:func:`resolve_source` checks a string without opening anything (DNS aside);
:func:`probe` opens a file source once and reads a frame, so that "not a video" is a 422 before a
stream exists. Captures are OpenCV ``VideoCapture`` objects on the FFmpeg backend, behind the small
:class:`Capture` protocol (tests inject fakes); the open and read timeouts bound every blocking call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol
from urllib.parse import SplitResult, urlsplit, urlunsplit

import cv2

from visionserve.errors import (
    BadSourceError,
    InputError,
    InvalidParameterError,
    SourceNotFoundError,
    SourceRefusedError,
)
from visionserve.outbound import OutboundPolicy
from visionserve.types import BGRImage

_RTSP_PORT = 554
_DEVICE_PREFIX = "device:"


class SourceKind(StrEnum):
    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    DEVICE = "device"


@dataclass(frozen=True)
class SourcePolicy:
    """What this server lets streams open: the video folder (None: no files), devices, URL hosts."""

    video_dir: Path | None
    devices: bool
    urls: OutboundPolicy


@dataclass(frozen=True)
class Source:
    """A checked source. ``shown``: the source as given, credentials masked. ``location``: the file
    path, the device index, or the URL as given (its host is resolved again by :meth:`target`)."""

    kind: SourceKind
    shown: str
    location: str | int
    policy: SourcePolicy

    @property
    def live(self) -> bool:
        """Cameras and URLs are live (read as fast as they come); files are played at their fps."""
        return self.kind is not SourceKind.FILE

    def target(self) -> str | int:
        """What the capture opens now: for URLs the URL with its host replaced by the checked
        address (blocks on DNS; raises :class:`SourceRefusedError` or :class:`InputError`)."""
        if isinstance(self.location, int) or self.kind is SourceKind.FILE:
            return self.location
        parts = urlsplit(self.location)
        address = _checked_address(parts, self.policy.urls)
        host = f"[{address}]" if ":" in address else address
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + host + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


def _mask(parts: SplitResult) -> str:
    if "@" not in parts.netloc:
        return urlunsplit(parts)
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _checked_address(parts: SplitResult, policy: OutboundPolicy) -> str:
    """The address the URL's host resolves to, checked by ``policy``. RTSP hosts are checked as the
    same host and port over http: the policy's rules are about hosts, not schemes."""
    port = parts.port or (_RTSP_PORT if parts.scheme.startswith("rtsp") else None)
    scheme = "https" if parts.scheme == "https" else "http"
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    probe_url = f"{scheme}://{host}" + (f":{port}" if port else "") + "/"
    try:
        return policy.resolve(probe_url).address
    except InvalidParameterError as exc:
        raise SourceRefusedError(str(exc)) from None


def resolve_source(text: str, policy: SourcePolicy) -> Source:
    """``text`` checked against ``policy`` (module doc). Raises :class:`SourceRefusedError`,
    :class:`SourceNotFoundError` (no such file) or :class:`BadSourceError` (not a source form).
    URL hosts are resolved: call it off the event loop."""
    text = text.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in {"rtsp", "rtsps", "http", "https"}:
        return _url_source(text, policy)
    if scheme:
        raise BadSourceError(f"source scheme {scheme!r} is not supported: use rtsp, http(s), a file or device:N")
    if text.lower().startswith(_DEVICE_PREFIX):
        return _device_source(text, policy)
    return _file_source(text, policy)


def _url_source(text: str, policy: SourcePolicy) -> Source:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as exc:
        raise BadSourceError(f"source is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise BadSourceError("source URL has no host")
    kind = SourceKind.RTSP if parts.scheme.lower().startswith("rtsp") else SourceKind.HTTP
    source = Source(kind, _mask(parts), text, policy)
    try:
        source.target()
    except InputError as exc:
        raise SourceRefusedError(str(exc)) from None
    return source


def _device_source(text: str, policy: SourcePolicy) -> Source:
    index = text[len(_DEVICE_PREFIX) :].strip()
    if not index.isdigit() or int(index) > 63:
        raise BadSourceError(f"device source must be device:N with N from 0 to 63, got {text!r}")
    if not policy.devices:
        raise SourceRefusedError("local devices are not enabled on this server (setting stream_devices)")
    return Source(SourceKind.DEVICE, text, int(index), policy)


def _file_source(name: str, policy: SourcePolicy) -> Source:
    if policy.video_dir is None:
        raise SourceRefusedError("video files are not enabled on this server (setting video_dir)")
    root = policy.video_dir.resolve()
    if not name or "\x00" in name or Path(name).is_absolute():
        raise SourceRefusedError(f"a file source is a name inside the video folder, not {name!r}")
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise SourceRefusedError(f"file source {name!r} is outside the video folder")
    if not path.is_file():
        raise SourceNotFoundError(f"no video file {name!r} in the video folder")
    return Source(SourceKind.FILE, name, str(path), policy)


class Capture(Protocol):
    """An open video source (OpenCV's ``VideoCapture`` has this shape)."""

    def read(self) -> tuple[bool, BGRImage | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


#: ``opener(target, open_timeout_s, read_timeout_s)``: an open :class:`Capture`; raises ``OSError``.
Opener = Callable[[str | int, float, float], Capture]


def open_capture(target: str | int, open_timeout: float, read_timeout: float) -> Capture:
    """An OpenCV capture of ``target`` on the FFmpeg backend (devices on the default one), whose
    open and reads give up after the timeouts; ``OSError`` when it does not open."""
    if isinstance(target, int):
        capture = cv2.VideoCapture(target)
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(read_timeout * 1000),
        ]
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise OSError("the source could not be opened")
    return capture  # type: ignore[return-value]


def probe(source: Source, opener: Opener = open_capture, timeout: float = 10.0) -> None:
    """Open a file source and read one frame; :class:`BadSourceError` when it is not a video that
    OpenCV reads. Other sources are not probed: a camera may be down now and up later."""
    if source.kind is not SourceKind.FILE:
        return
    try:
        capture = opener(source.target(), timeout, timeout)
    except OSError:
        raise BadSourceError(f"file {source.shown!r} is not a video this server can read") from None
    try:
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok or image is None:
        raise BadSourceError(f"file {source.shown!r} is not a video this server can read (no frame)")
