"""Stream sources: files only inside the video folder, URL hosts through the outbound policy,
devices only when enabled, and a probe that refuses what is not a video."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.streams_support import write_moving_video

from visionserve.errors import BadSourceError, SourceNotFoundError, SourceRefusedError
from visionserve.outbound import OutboundPolicy, parse_networks
from visionserve.streams.sources import SourceKind, SourcePolicy, probe, resolve_source


def resolver_for(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError("unknown host")
        return table[host]

    return resolve


RESOLVER = resolver_for({"cam.example": ["93.184.216.34"], "inside.example": ["127.0.0.1"]})


def policy(tmp_path: Path | None, *, hosts: Sequence[str] = (), devices: bool = False, networks: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    urls = OutboundPolicy(hosts, parse_networks(networks), RESOLVER, "stream source", "stream_url_hosts")
    return SourcePolicy(tmp_path, devices, urls)


def test_a_file_inside_the_video_folder_resolves_to_its_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.mp4").write_bytes(b"x")
    source = resolve_source("sub/a.mp4", policy(tmp_path))
    assert source.kind is SourceKind.FILE and not source.live
    assert source.target() == str((tmp_path / "sub" / "a.mp4").resolve())


@pytest.mark.parametrize("name", ["../outside.mp4", "sub/../../outside.mp4", "/etc/passwd", "link.mp4", ".", "a\x00b"])
def test_paths_leaving_the_video_folder_are_refused(tmp_path: Path, name: str) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (tmp_path / "outside.mp4").write_bytes(b"x")
    (videos / "link.mp4").symlink_to(tmp_path / "outside.mp4")
    with pytest.raises(SourceRefusedError):
        resolve_source(name, policy(videos))


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"no video file 'nope\.mp4'"):
        resolve_source("nope.mp4", policy(tmp_path))


def test_files_are_refused_without_a_video_folder() -> None:
    with pytest.raises(SourceRefusedError, match="video_dir"):
        resolve_source("a.mp4", policy(None))


def test_devices_only_when_enabled(tmp_path: Path) -> None:
    with pytest.raises(SourceRefusedError, match="stream_devices"):
        resolve_source("device:0", policy(tmp_path))
    source = resolve_source("device:2", policy(tmp_path, devices=True))
    assert source.kind is SourceKind.DEVICE and source.target() == 2
    with pytest.raises(BadSourceError):
        resolve_source("device:x", policy(tmp_path, devices=True))


@pytest.mark.parametrize(
    "text", ["ftp://cam.example/v.mp4", "file:///etc/passwd", "rtsp://", "http://cam.example:99999/"]
)
def test_other_schemes_and_broken_urls_are_bad_sources(text: str) -> None:
    with pytest.raises(BadSourceError):
        resolve_source(text, policy(None, hosts=["*"]))


def test_url_hosts_pass_the_allow_list_and_connect_to_the_checked_address() -> None:
    with pytest.raises(SourceRefusedError, match="allow-list"):
        resolve_source("http://other.example/live.mjpg", policy(None, hosts=["cam.example"]))
    with pytest.raises(SourceRefusedError, match="URLs are not allowed"):
        resolve_source("http://cam.example/live.mjpg", policy(None))
    source = resolve_source("http://cam.example:8080/live.mjpg?x=1", policy(None, hosts=["cam.example"]))
    assert source.kind is SourceKind.HTTP and source.live
    assert source.target() == "http://93.184.216.34:8080/live.mjpg?x=1"


def test_rtsp_credentials_are_masked_and_the_host_is_checked_on_its_port() -> None:
    source = resolve_source("rtsp://user:pw@cam.example/stream1", policy(None, hosts=["cam.example:554"]))
    assert source.kind is SourceKind.RTSP
    assert source.shown == "rtsp://***@cam.example/stream1"
    assert source.target() == "rtsp://user:pw@93.184.216.34/stream1"
    with pytest.raises(SourceRefusedError):
        resolve_source("rtsp://cam.example:8554/s", policy(None, hosts=["cam.example:554"]))


def test_private_addresses_are_refused_unless_their_network_is_allowed() -> None:
    with pytest.raises(SourceRefusedError, match="loopback"):
        resolve_source("rtsp://inside.example/s", policy(None, hosts=["*"]))
    source = resolve_source("rtsp://inside.example/s", policy(None, hosts=["*"], networks=["127.0.0.0/8"]))
    assert source.target() == "rtsp://127.0.0.1/s"


def test_unresolvable_hosts_are_refused() -> None:
    with pytest.raises(SourceRefusedError, match="cannot resolve"):
        resolve_source("http://nowhere.example/v", policy(None, hosts=["*"]))


def test_probe_refuses_a_file_that_is_not_a_video_and_accepts_a_real_one(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(BadSourceError, match="not a video"):
        probe(resolve_source("notes.mp4", policy(tmp_path)), timeout=5)
    write_moving_video(tmp_path / "ok.mp4", frames=5)
    probe(resolve_source("ok.mp4", policy(tmp_path)), timeout=5)
