"""The outbound-URL policy: host allow-list, address rules after resolution, pinned connections.

No test sends a packet off this machine: names resolve through injected resolvers, and the only
connections go to receivers on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from tests.jobs_store_contract import T0, claim, make_job, output
from tests.jobs_support import LOOPBACK, Receiver, numbered_image

from visionserve.errors import InputError, InvalidParameterError
from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import open_storage
from visionserve.jobs.fetch import UrlFetcher
from visionserve.jobs.model import WebhookState
from visionserve.jobs.webhooks import WebhookDispatcher
from visionserve.outbound import OutboundPolicy, parse_networks


def resolving(table: dict[str, Sequence[str]]) -> OutboundPolicy:
    """A policy allowing any host, whose resolver answers from ``table`` (no DNS)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return OutboundPolicy(["*"], resolver=resolve, what="webhook_url")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "ff02::1",
    ],
)
def test_names_resolving_to_non_public_addresses_are_refused(address: str) -> None:
    policy = resolving({"hooks.example": [address]})
    with pytest.raises(InvalidParameterError, match="loopback, private, link-local or reserved"):
        policy.resolve("http://hooks.example/x")


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://[::1]:8000/x", "http://169.254.169.254/latest"])
def test_literal_non_public_addresses_are_refused_without_dns(url: str) -> None:
    with pytest.raises(InvalidParameterError, match="loopback, private"):
        resolving({}).check(url)


def test_one_bad_address_among_several_refuses_the_name() -> None:
    with pytest.raises(InvalidParameterError):
        resolving({"mixed.example": ["93.184.216.34", "127.0.0.1"]}).resolve("https://mixed.example/")


def test_public_addresses_pass_and_the_request_is_pinned_to_the_checked_one() -> None:
    target = resolving({"hooks.example": ["93.184.216.34"]}).resolve("https://hooks.example:8443/a?b=1")
    with httpx.Client() as client:
        request = target.request(client, "POST", content=b"{}", headers={"X-A": "1"})
    assert str(request.url) == "https://93.184.216.34:8443/a?b=1"
    assert request.headers["host"] == "hooks.example:8443" and request.headers["x-a"] == "1"
    assert request.extensions["sni_hostname"] == "hooks.example"


def test_allowed_networks_open_private_blocks_only() -> None:
    policy = OutboundPolicy(["*"], parse_networks(["10.0.0.0/8"]), resolver=lambda host, port: ["10.9.8.7"])
    assert policy.resolve("http://internal.example/").address == "10.9.8.7"
    with pytest.raises(InvalidParameterError):
        OutboundPolicy(["*"], parse_networks(["10.0.0.0/8"])).check("http://192.168.0.1/")


def test_the_host_list_is_exact_and_may_name_ports() -> None:
    policy = OutboundPolicy(["images.example", "cdn.example:8080"], resolver=lambda host, port: ["93.184.216.34"])
    policy.check("https://IMAGES.example/a.png")
    policy.check("http://cdn.example:8080/a.png")
    for url in ("http://cdn.example/a.png", "http://evil.images.example/", "http://images.example.evil/"):
        with pytest.raises(InvalidParameterError, match="allow-list"):
            policy.check(url)
    with pytest.raises(InvalidParameterError, match="not allowed on this server"):
        OutboundPolicy([]).check("http://images.example/")


def test_unresolvable_hosts_are_input_errors() -> None:
    with pytest.raises(InputError, match="cannot resolve"):
        resolving({}).resolve("http://nowhere.example/")


def test_a_rebinding_name_is_fetched_from_the_address_that_was_checked() -> None:
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    policy = OutboundPolicy(["*"], LOOPBACK, resolver=lambda host, port: next(answers), what="an image URL")
    with Receiver(files={"/a.png": numbered_image(0)}) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        fetcher = UrlFetcher(policy)
        assert fetcher.fetch(f"http://images.example:{port}/a.png") == numbered_image(0)
        with pytest.raises(InvalidParameterError):  # the second answer is checked too, never contacted
            fetcher.fetch(f"http://images.example:{port}/a.png")
        fetcher.close()


def test_a_webhook_to_the_server_itself_is_refused_and_never_sent(tmp_path: Path) -> None:
    storage = open_storage(JobsConfig(data_dir=tmp_path))
    with Receiver() as receiver:
        job_id = make_job(storage, 1, webhook=f"{receiver.url}/v1/models/default/unload")
        assert storage.store.commit(claim(storage, job_id, 0), output(), "w", T0)
        assert storage.store.finish_if_complete(job_id, T0) is not None
        dispatcher = WebhookDispatcher(storage.store, "s", OutboundPolicy(["*"], what="webhook_url"))
        delivery = dispatcher.run(job_id, lambda seconds: False)
        dispatcher.close()
    assert delivery is not None and (delivery.state, delivery.attempts) == (WebhookState.FAILED, 1)
    assert receiver.received == []
    storage.db.close()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_roboflow_url_images_follow_the_policy(tmp_path: Path, anyio_backend: str) -> None:
    from tests.jobs_support import PLUGIN_MODEL, write_plugin_model

    from visionserve.api.app import create_app
    from visionserve.models.repository import ModelRepository
    from visionserve.settings import Settings

    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    with Receiver(files={"/a.png": numbered_image(0)}) as receiver:
        url = f"http://images.test:{receiver.url.rsplit(':', 1)[1]}/a.png"
        payload = {"model_id": PLUGIN_MODEL, "image": {"type": "url", "value": url}}
        for networks, status in (((), 422), (("127.0.0.0/8",), 200)):
            settings = Settings(
                models=tmp_path / "models",
                data_dir=tmp_path / "data",
                url_image_hosts=("images.test",),
                outbound_allow_networks=networks,
            )
            repository = ModelRepository.scan(tmp_path / "models")
            app = create_app(settings, repository, set_threads=lambda n: None, resolver=lambda h, p: ["127.0.0.1"])
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    answer = await client.post("/infer/object_detection", json=payload)
            assert answer.status_code == status, answer.text
