"""Server settings: one pydantic-settings object.

Every field can be given four ways, highest priority first:

1. a ``visionserve serve`` flag (``--max-body-bytes 1000000``),
2. an environment variable with the ``VISIONSERVE_`` prefix (``VISIONSERVE_MAX_BODY_BYTES``),
3. a YAML config file (``--config FILE`` or ``VISIONSERVE_CONFIG``) with the field names as keys,
4. the defaults below.

``api_keys`` is comma-separated in the environment and on the command line, a list or a
comma-separated string in the file; the keys are :class:`~pydantic.SecretStr`, so they never show in
a ``repr`` or a log line.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from visionserve.core.images import DEFAULT_MAX_PIXELS
from visionserve.errors import ConfigError
from visionserve.models.preload import Preload, parse_preload
from visionserve.outbound import parse_networks
from visionserve.streams.spec import StreamSpec

ENV_PREFIX = "VISIONSERVE_"


class ArtifactBackend(StrEnum):
    """Where crops, annotated images and uploaded inputs are kept."""

    LOCAL = "local"  # files under <data dir>/artifacts (a shared folder for workers on other machines)
    DATABASE = "database"  # rows in the jobs database: workers need nothing shared but it and the broker


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Everything ``visionserve serve`` can be told. Build it with :meth:`load`, which turns
    validation failures into :class:`~visionserve.errors.ConfigError` naming the field."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 for every interface).")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    grpc_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="TCP port for KServe v2 over gRPC on the same host (Triton uses 8001); off when unset.",
    )
    models: Path | None = Field(
        None, description="Model repository folder (one sub-folder with a model.yaml per model)."
    )
    config: Path | None = Field(None, description="YAML file with these settings; flags and environment win.")
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (), description="Comma-separated API keys; when set, every route but /healthz and /readyz needs one."
    )
    max_body_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest request body in bytes (413 beyond, checked while reading)."
    )
    max_image_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="Largest image in pixels, width x height (413 beyond)."
    )
    max_decoded_pixels: int = Field(
        400_000_000,
        ge=1,
        description="Decoded pixels held at once by all requests together (about 3 bytes each); a request waits "
        "up to --decode-wait seconds for its share (429 beyond), one that needs more than all of it gets 413.",
    )
    decode_wait: float = Field(
        2.0, ge=0, description="Seconds a request may wait for its share of --max-decoded-pixels (then 429)."
    )
    instances: int | None = Field(
        None, ge=1, le=64, description="Instances of every model, overriding model.yaml (default: per model)."
    )
    threads: int | None = Field(
        None, ge=1, le=1024, description="CPU cores that inference may use (default: every core of this process)."
    )
    preload: str = Field(
        Preload.AUTO.value,
        description="Models loaded at start: auto (the default model and every model of --models; other built-ins "
        "load on their first request), all, none, or comma-separated model names.",
    )
    malloc_arena_max: int = Field(
        2,
        ge=0,
        le=1024,
        description="glibc malloc arenas of the process (like MALLOC_ARENA_MAX; 0: glibc's default of 8 per "
        "core). Few arenas keep the resident size flat under long varied load.",
    )
    malloc_trim_interval: float = Field(
        0.0,
        ge=0,
        le=86400,
        description="Seconds between calls of glibc's malloc_trim, which hands freed heap pages back to the "
        "system (0: never).",
    )
    debug: bool = Field(False, description="Put tracebacks of internal errors in responses.")
    log_level: LogLevel = Field(LogLevel.INFO, description="Log level of visionserve and the HTTP server.")
    access_log: bool = Field(True, description="Log one line per request.")
    header_timeout: float = Field(
        10.0, gt=0, le=3600, description="Seconds a connection may take to send a request's headers (closed beyond)."
    )
    keep_alive_timeout: float = Field(
        5.0, gt=0, le=3600, description="Seconds an idle keep-alive connection stays open between requests."
    )
    body_timeout: float = Field(
        120.0, gt=0, le=86400, description="Seconds a request body may take to arrive in full (408 beyond)."
    )
    max_connections: int = Field(
        1000, ge=1, description="Connections and requests served at once; beyond, new requests get 503."
    )
    shutdown_timeout: float = Field(
        30.0, ge=0, le=3600, description="Seconds that requests in flight get to finish after SIGTERM."
    )
    # jobs
    data_dir: Path = Field(Path("var"), description="Folder of the jobs database (SQLite) and of job artifacts.")
    database_url: SecretStr | None = Field(
        None, description="Jobs database, e.g. postgresql://user:pass@host/db (default: SQLite in data_dir)."
    )
    broker_url: SecretStr | None = Field(
        None, description="Celery broker (redis://... or amqp://...): jobs then run on `visionserve worker` processes."
    )
    artifact_store: ArtifactBackend = Field(
        ArtifactBackend.LOCAL, description="Where job inputs, crops and annotated images go: local (files) or database."
    )
    jobs_workers: int = Field(1, ge=1, le=64, description="Threads of the embedded job pool (used without a broker).")
    jobs_queue: str = Field("visionserve", pattern=r"^[\w.-]{1,100}$", description="Broker queue of job items.")
    jobs_max_images: int = Field(10_000, ge=1, description="Most images in one job.")
    jobs_max_body_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="Largest POST /v1/jobs body in bytes (images are spooled to disk)."
    )
    jobs_max_video_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="Largest video of a video job in bytes (the body limit applies too)."
    )
    jobs_max_video_frames: int = Field(
        108_000, ge=1, description="Most frames of a video job's video (108000: an hour at 30 fps)."
    )
    jobs_max_attempts: int = Field(
        3, ge=1, le=100, description="Deliveries of one item (worker lost) before the item is failed."
    )
    jobs_retention_hours: float = Field(
        168.0, ge=0, description="Ended jobs and their artifacts are removed after this many hours (0: never)."
    )
    jobs_url_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated hosts that jobs may fetch image URLs from (empty: URLs are refused)."
    )
    broker_visibility_timeout: int = Field(
        600,
        ge=1,
        description="Redis broker: seconds before a task that a lost worker held is delivered again "
        "(keep it above the longest item and webhook retry wait).",
    )
    jobs_redispatch_after: float = Field(
        600.0,
        ge=0,
        description="Broker runners: when no item was claimed or finished for this many seconds, the broker's "
        "queue is empty and jobs still have unfinished items, the server sends those items again (a broker "
        "restart lost them); 0: never. Keep it above the longest item.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret that signs job webhooks (HMAC-SHA256); webhooks are refused without it."
    )
    webhook_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated hosts that job webhooks may be sent to, or * for any (empty: refused)."
    )
    outbound_allow_networks: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated CIDR blocks (e.g. 10.0.0.0/8) that image URLs and webhooks may reach "
        "although they are loopback, private or link-local (default: public addresses only).",
    )
    webhook_attempts: int = Field(6, ge=1, le=50, description="Tries per webhook, with exponential backoff.")
    webhook_backoff: float = Field(1.0, ge=0, le=3600, description="Seconds before the first webhook retry.")
    # protocols
    upload_dir: Path | None = Field(
        None, description="Folder of the crops that /upload links to (default: data_dir/uploads)."
    )
    upload_max_tasks: int = Field(1000, ge=1, description="Uploads whose crops are kept; older ones are removed.")
    upload_max_bytes: int = Field(
        1 << 30, ge=1, description="Bytes of /upload crops kept (default 1 GiB); the oldest uploads are removed first."
    )
    url_image_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated hosts that Roboflow requests may name in url images (empty: refused)."
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated origins (https://app.example.com) whose browser pages may call this server, "
        "or * for any (then without credentials); empty: cross-origin calls are off.",
    )
    scene_model: str | None = Field(
        None, description="The classify model of DeepStack's /v1/vision/scene (default: the first one by name)."
    )
    # streams
    video_dir: Path | None = Field(
        None, description="Folder of the video files that streams may name as sources (default: no files)."
    )
    stream_devices: bool = Field(False, description="Let streams open local devices (device:N sources).")
    stream_url_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated hosts that rtsp:// and http(s):// stream sources may name, or * (empty: none)."
    )
    stream_stall_timeout: float = Field(
        10.0, gt=0, le=3600, description="Seconds without a frame (or to open) before a stream source is reconnected."
    )
    stream_idle_timeout: float = Field(
        0.0,
        ge=0,
        description="Seconds without viewer or event consumer before an API-created stream is stopped (0: never).",
    )
    stream_max: int = Field(16, ge=1, le=1024, description="Streams this server runs at once.")
    stream_token_ttl: float = Field(
        300.0, gt=0, le=86400, description="Seconds a signed stream token (for <img> and EventSource) stays valid."
    )
    stream_token_secret: SecretStr | None = Field(
        None, description="Secret that signs stream tokens (default: a random one per process start)."
    )
    streams: tuple[StreamSpec, ...] = Field(
        (), description="Streams started with the server (settings file only; see the README's stream section)."
    )

    @field_validator(
        "jobs_url_hosts",
        "url_image_hosts",
        "webhook_hosts",
        "outbound_allow_networks",
        "stream_url_hosts",
        "cors_origins",
        mode="before",
    )
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        """A comma-separated string, or a list (YAML), to stripped lower-case hosts without blanks;
        entries that are not strings are left for the type check to refuse."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            hosts = (host.strip().lower() if isinstance(host, str) else host for host in value)
            return tuple(host for host in hosts if host != "")
        return value

    @field_validator("models", "data_dir", "upload_dir", "video_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Fixed at start: an analysis module changes the working directory while it loads
        # (visionserve.modules.loader), and no folder of the server may move with it.
        return None if value is None else value.absolute()

    @field_validator("preload", mode="before")
    @classmethod
    def _normalise_preload(cls, value: Any) -> Any:
        """A keyword or comma-separated names (a list in YAML), normalised by :func:`parse_preload`."""
        return parse_preload(value) if isinstance(value, str | list | tuple) else value

    @field_validator("outbound_allow_networks")
    @classmethod
    def _valid_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(value)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        origins = tuple(origin.rstrip("/") for origin in value)
        if "*" in origins and len(origins) > 1:
            raise ValueError("'*' allows every origin: list origins, or give '*' alone")
        for origin in origins:
            scheme, _, host = origin.partition("://")
            if origin != "*" and (scheme not in {"http", "https"} or not host or "/" in host):
                raise ValueError(f"origin {origin!r} must be scheme://host[:port], such as https://app.example.com")
        return origins

    @field_validator("streams")
    @classmethod
    def _unique_stream_names(cls, value: tuple[StreamSpec, ...]) -> tuple[StreamSpec, ...]:
        names = [spec.name for spec in value]
        if None in names or len(set(names)) != len(names):
            raise ValueError("every stream of the settings needs a unique name")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("api_keys")
    @classmethod
    def _no_blank_keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(not key.get_secret_value().strip() for key in value):
            raise ValueError("API keys must not be blank")
        return value

    @property
    def cores(self) -> int:
        """The cores inference may use: ``threads`` or every core available to this process."""
        return self.threads or available_cores()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, ConfigFileSource(settings_cls)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from ``overrides`` (flags; None values are ignored), the environment and the
        config file. Raises :class:`ConfigError` naming each wrong field."""
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid settings: {problems}") from None


class ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the YAML file named by ``config`` (as set by a flag or the environment).

    Raises :class:`ConfigError` when the file cannot be read, is not a mapping, or has keys that are
    not settings.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self.current_state.get("config")
        if path is None:
            return {}
        return read_config_file(Path(path), set(self.settings_cls.model_fields))


def read_config_file(path: Path, known: set[str]) -> dict[str, Any]:
    """The settings mapping in the YAML file ``path``; keys may use ``-`` or ``_``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of setting names to values")
    values = {str(key).replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown settings {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    values.pop("config", None)
    return values
