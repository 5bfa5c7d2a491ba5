"""The one error tree of visionserve.

Every error raised on purpose by visionserve derives from :class:`VisionServeError`; runtime
exceptions of OpenCV or ONNX Runtime are translated into it inside the backends. Interfaces map the
classes below to their own codes in one table (HTTP status codes live in ``api/errors.py``)::

    VisionServeError
    ├── InputError                    the caller sent something unusable
    │   ├── ImageDecodeError          bytes that are not a supported image
    │   ├── ImageTooLargeError        too many pixels (decompression bombs) or bytes
    │   ├── UnsupportedMediaTypeError a content type that is not an image
    │   ├── RequestTimeoutError       a request body that did not arrive in time
    │   └── InvalidParameterError     a threshold, class list or option out of range
    │       ├── WrongTaskError        the model's task does not answer this interface (boxes of a classifier)
    │       ├── DatasetError          an evaluation set (annotations, archive) that cannot be read
    │       │   └── UnmatchedClassesError annotation class names that the model's labels lack
    │       ├── SourceNotFoundError   a stream source file that is not in the video folder
    │       ├── SourceRefusedError    a stream source this server may not open (host, device, path)
    │       └── BadSourceError        a stream source that is not a readable video
    ├── ModelNotFoundError            no model of that name in the repository
    ├── ModelNotReadyError            the model exists but is not loaded (or is unloading)
    ├── OverloadedError               a queue is full; try again later
    ├── ShuttingDownError             the server is stopping and takes no new requests
    ├── JobNotFoundError              no job (or item, or artifact) with that id
    ├── StreamNotFoundError           no live stream with that id
    ├── NoFrameYetError               the stream has not produced a frame yet
    ├── JobStateError                 the job's state does not allow that (cancel a finished job)
    ├── StorageError                  the jobs database or artifact store failed or is unreachable
    ├── AuthenticationError           a missing or wrong API key (HTTP 401)
    ├── RemoteError                   the Python client got no usable answer from a server
    │   ├── ConnectionFailedError     the server cannot be reached (after retries)
    │   └── ServerError               the server failed (5xx) or answered something unreadable
    ├── ConfigError                   settings or a model.yaml that does not validate
    │   └── ModelSpecError            names the file and the field
    ├── ModelLoadError                model files missing or rejected by the runtime
    │   └── MissingDependencyError    an optional runtime is not installed (names the extra)
    └── InferenceError                the runtime failed on a valid input
        └── DecodeError               model outputs do not fit the configured decoder
"""

from __future__ import annotations


class VisionServeError(Exception):
    """Base class of every error that visionserve raises on purpose."""


class InputError(VisionServeError):
    """The caller sent something that cannot be processed."""


class ImageDecodeError(InputError):
    """The bytes are not an image in a supported format (JPEG, PNG, WebP, BMP, TIFF)."""


class ImageTooLargeError(InputError):
    """The image has more pixels (or bytes) than the configured limit."""


class UnsupportedMediaTypeError(InputError):
    """The declared content type is not an image type."""


class RequestTimeoutError(InputError):
    """The request body did not arrive within the server's body timeout."""


class InvalidParameterError(InputError):
    """An option such as a threshold or a class filter is out of range."""


class DatasetError(InvalidParameterError):
    """An evaluation set whose annotations, names list or archive cannot be read; names the file."""


class UnmatchedClassesError(DatasetError):
    """Class names of an evaluation set that are not among the model's labels (the message lists them)."""


class WrongTaskError(InvalidParameterError):
    """The model's task does not give what this interface answers (e.g. boxes from a classifier)."""


class SourceNotFoundError(InvalidParameterError):
    """A stream source names a video file that the video folder does not hold."""


class SourceRefusedError(InvalidParameterError):
    """A stream source that this server may not open: a host off the allow-list or with a private
    address, a device while devices are off, a path outside the video folder."""


class BadSourceError(InvalidParameterError):
    """A stream source that is not a video the server can read (or not a source at all)."""


class BadVideoError(InvalidParameterError):
    """A video job's upload that is not a video the server can read (or whose first frame does not decode)."""


class StreamNotFoundError(VisionServeError):
    """No live stream with that id (never created, deleted, or reaped)."""


class NoFrameYetError(VisionServeError):
    """The stream exists but has not processed a frame yet (its source is opening or down)."""


class ModelNotFoundError(VisionServeError):
    """No model of that name exists in the repository."""


class ModelNotReadyError(VisionServeError):
    """The model exists but is not loaded, or is being unloaded."""


class OverloadedError(VisionServeError):
    """A bounded queue is full; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDownError(VisionServeError):
    """The server received SIGTERM: requests in flight finish, new ones are refused."""


class JobNotFoundError(VisionServeError):
    """No job, item or artifact with that id (or it was removed by retention)."""


class JobStateError(VisionServeError):
    """A state change that the job's transition table does not allow, such as cancelling a finished job."""


class StorageError(VisionServeError):
    """The jobs database or the artifact store failed or cannot be reached."""


class AuthenticationError(VisionServeError):
    """The request carries no API key, or one the server does not accept."""


class RemoteError(VisionServeError):
    """The Python client could not get a usable answer from a visionserve server."""


class ConnectionFailedError(RemoteError):
    """The server could not be reached, even after the retries."""


class ServerError(RemoteError):
    """The server failed (a 5xx answer) or answered with something the client cannot read."""


class ConfigError(VisionServeError):
    """Settings that do not validate."""


class ModelSpecError(ConfigError):
    """A ``model.yaml`` (or inferred spec) that does not validate; the message names file and field."""


class ModelLoadError(VisionServeError):
    """Model files are missing or the runtime refused them."""


class MissingDependencyError(ModelLoadError):
    """An optional runtime is not installed; the message names the package extra to install."""


class InferenceError(VisionServeError):
    """The runtime failed while running a valid input."""


class DecodeError(InferenceError):
    """Model outputs have shapes that the configured decoder cannot read."""
