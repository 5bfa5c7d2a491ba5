"""Which device a worker process runs its models on: ``cpu``, ``cuda:N``, or ``auto`` (worker index
modulo the number of GPUs), and the model spec rewritten for it."""

from __future__ import annotations

import re
import shutil
import subprocess

from visionserve.errors import ConfigError
from visionserve.models.devices import spec_on_device

_DEVICE = re.compile(r"(cpu|cuda(:\d+)?|auto)")


def count_gpus() -> int:
    """NVIDIA GPUs that ``nvidia-smi -L`` lists (0 without the tool)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        listing = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def resolve_device(device: str, worker_index: int, gpu_count: int) -> str:
    """``cpu`` or ``cuda:N``. ``auto`` takes GPU ``worker_index % gpu_count`` (cpu without GPUs);
    ``cuda`` alone means ``cuda:0``. Raises :class:`ConfigError` for anything else."""
    if not _DEVICE.fullmatch(device):
        raise ConfigError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    if device == "auto":
        return f"cuda:{worker_index % gpu_count}" if gpu_count > 0 else "cpu"
    return "cuda:0" if device == "cuda" else device


__all__ = ["count_gpus", "resolve_device", "spec_on_device"]
