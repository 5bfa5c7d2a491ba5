"""Where ``/upload`` keeps the crops it links to: one folder per task under a root folder.

Files are ``<root>/<task_id>/<index>.jpg``. Writes go to a temporary name and are renamed into
place, so a reader never sees half a file. At most ``max_tasks`` task folders are kept; saving a
new task removes the oldest ones. Methods do blocking file I/O: call them off the event loop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from visionserve.api.wire.upload import crop_name, is_task_id
from visionserve.errors import JobNotFoundError, StorageError


class UploadStore:
    """Crops of ``/upload`` tasks under ``root`` (created when missing)."""

    def __init__(self, root: Path, max_tasks: int = 1000) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, got {max_tasks}")
        self.root = root
        self.max_tasks = max_tasks

    @classmethod
    def temporary(cls, max_tasks: int = 1000) -> UploadStore:
        """A store in a new temporary folder; :meth:`remove` deletes it."""
        return cls(Path(tempfile.mkdtemp(prefix="visionserve-uploads-")), max_tasks)

    def _task_dir(self, task_id: str) -> Path:
        if not is_task_id(task_id):
            raise JobNotFoundError(f"no upload task {task_id!r}")
        return self.root / task_id

    def save(self, task_id: str, crops: Sequence[bytes]) -> None:
        """Store ``crops`` (encoded JPEGs, crop ``i`` at index ``i``) under ``task_id``, then drop
        the oldest tasks beyond ``max_tasks``. Raises :class:`StorageError` when the disk refuses."""
        folder = self._task_dir(task_id)
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
        try:
            tasks = [entry for entry in os.scandir(self.root) if entry.is_dir() and is_task_id(entry.name)]
            tasks.sort(key=lambda entry: entry.stat().st_mtime_ns)
        except OSError:
            return
        for entry in tasks[: max(0, len(tasks) - self.max_tasks)]:
            shutil.rmtree(entry.path, ignore_errors=True)

    def remove(self) -> None:
        """Delete the root folder and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)
