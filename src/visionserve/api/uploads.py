"""Where ``/upload`` keeps the crops it links to: one folder per task under a root folder.

Files are ``<root>/<task_id>/<index>.jpg``. Writes go to a temporary name and are renamed into
place, so a reader never sees half a file. At most ``max_tasks`` task folders and ``max_bytes`` bytes
of crops are kept; saving a new task removes the oldest tasks until both hold. Methods do blocking
file I/O: call them off the event loop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from visionserve.api.wire.upload import crop_name, is_task_id
from visionserve.errors import ImageTooLargeError, JobNotFoundError, StorageError

#: Default cap on the bytes of stored crops: 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30


class UploadStore:
    """Crops of ``/upload`` tasks under ``root`` (created when missing): at most ``max_tasks``
    tasks and ``max_bytes`` bytes of crops, the oldest tasks evicted first."""

    def __init__(self, root: Path, max_tasks: int = 1000, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, got {max_tasks}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.root = root
        self.max_tasks = max_tasks
        self.max_bytes = max_bytes

    @classmethod
    def temporary(cls, max_tasks: int = 1000, max_bytes: int = DEFAULT_MAX_BYTES) -> UploadStore:
        """A store in a new temporary folder; :meth:`remove` deletes it."""
        return cls(Path(tempfile.mkdtemp(prefix="visionserve-uploads-")), max_tasks, max_bytes)

    def _task_dir(self, task_id: str) -> Path:
        if not is_task_id(task_id):
            raise JobNotFoundError(f"no upload task {task_id!r}")
        return self.root / task_id

    def save(self, task_id: str, crops: Sequence[bytes]) -> None:
        """Store ``crops`` (encoded JPEGs, crop ``i`` at index ``i``) under ``task_id``, then drop
        the oldest tasks until at most ``max_tasks`` tasks and ``max_bytes`` bytes remain. Raises
        :class:`ImageTooLargeError` when the crops alone exceed ``max_bytes`` (nothing is stored) and
        :class:`StorageError` when the disk refuses."""
        folder = self._task_dir(task_id)
        size = sum(len(data) for data in crops)
        if size > self.max_bytes:
            raise ImageTooLargeError(
                f"the crops of this upload take {size} bytes, more than the store keeps ({self.max_bytes} bytes)"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for index, data in enumerate(crops):
                path = folder / crop_name(index)
                tmp = folder / f".{uuid.uuid4().hex}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot store the crops of upload {task_id}: {exc.strerror}") from exc
        self._prune()

    def read(self, task_id: str, index: int) -> bytes:
        """The JPEG bytes of crop ``index`` of ``task_id``; :class:`JobNotFoundError` when absent."""
        path = self._task_dir(task_id) / crop_name(index)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise JobNotFoundError(f"no crop {index} in upload task {task_id}") from None
        except OSError as exc:
            raise StorageError(f"cannot read crop {index} of upload {task_id}: {exc.strerror}") from exc

    def _prune(self) -> None:
        """Remove the oldest tasks (by folder modification time) beyond ``max_tasks`` or
        ``max_bytes``; the newest task always stays (:meth:`save` checked that it fits)."""
        try:
            tasks = [entry for entry in os.scandir(self.root) if entry.is_dir() and is_task_id(entry.name)]
            tasks.sort(key=lambda entry: entry.stat().st_mtime_ns)
            sizes = [_folder_bytes(entry.path) for entry in tasks]
        except OSError:
            return
        count, total = len(tasks), sum(sizes)
        for entry, size in zip(tasks[:-1], sizes, strict=False):
            if count <= self.max_tasks and total <= self.max_bytes:
                break
            shutil.rmtree(entry.path, ignore_errors=True)
            count, total = count - 1, total - size

    def remove(self) -> None:
        """Delete the root folder and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)


def _folder_bytes(path: str) -> int:
    """The bytes of the files directly in ``path`` (a task folder holds no sub-folders)."""
    return sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file())
