"""Signed webhooks: a POST of the job summary when a job ends, retried with exponential backoff.

The body is compact JSON; the header ``X-VisionServe-Signature: sha256=<hex>`` is the HMAC-SHA256 of
the exact body bytes with the shared secret, so a receiver checks it with :func:`verify` (or three
lines of its own) before parsing. ``X-VisionServe-Delivery`` names the job; a receiver that may see a
retry after a lost answer can de-duplicate on it.

The URL passes the :class:`~visionserve.outbound.OutboundPolicy` of the ``webhook_hosts`` setting at
submission (without DNS) and before every attempt (with DNS; the POST goes to the checked address), so
a webhook cannot reach the server itself or other private addresses unless the operator allows them.
A refused URL fails the delivery at once; the job shows only ``failed``.

A delivery succeeds on any 2xx answer. Connection errors, timeouts, 408, 429 and 5xx answers are
retried; other answers (a 4xx that says the request itself is wrong) end the delivery as failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from visionserve.errors import InputError, InvalidParameterError
from visionserve.jobs.model import Job, WebhookState
from visionserve.jobs.results import job_summary
from visionserve.jobs.store import JobStore
from visionserve.outbound import OutboundPolicy

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-VisionServe-Signature"
EVENT_HEADER = "X-VisionServe-Event"
DELIVERY_HEADER = "X-VisionServe-Delivery"
EVENT_JOB_ENDED = "job.ended"
_RETRIED_STATUS = frozenset({408, 425, 429})


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


def webhook_body(job: Job) -> bytes:
    """The bytes that are signed and sent: ``{"event": "job.ended", "job": <summary>}``, the same for
    every attempt (the summary leaves out the webhook's own delivery state)."""
    summary = job_summary(job)
    summary.pop("webhook", None)
    document: dict[str, Any] = {"event": EVENT_JOB_ENDED, "job": summary}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class WebhookRetries:
    """``attempts`` tries in all; the wait after failed try ``n`` (1-based) is
    ``min(backoff_s * factor ** (n - 1), max_backoff_s)`` seconds."""

    attempts: int = 6
    backoff_s: float = 1.0
    factor: float = 2.0
    max_backoff_s: float = 300.0
    timeout_s: float = 10.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_s * self.factor ** (attempt - 1), self.max_backoff_s))


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    detail: str


def post_once(
    client: httpx.Client, policy: OutboundPolicy, url: str, body: bytes, secret: str, delivery: str
) -> AttemptResult:
    """One POST of ``body`` to ``url`` if ``policy`` allows it; never raises for network or HTTP errors
    or a refused or invalid URL (a rejected attempt)."""
    try:
        target = policy.resolve(url)
    except InvalidParameterError as exc:  # refused (or stored before URLs were checked this strictly)
        return AttemptResult(Outcome.REJECTED, str(exc))
    except InputError as exc:  # DNS failed: may be temporary
        return AttemptResult(Outcome.RETRY, str(exc))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret),
        EVENT_HEADER: EVENT_JOB_ENDED,
        DELIVERY_HEADER: delivery,
    }
    try:
        response = client.send(target.request(client, "POST", content=body, headers=headers))
    except httpx.HTTPError as exc:
        return AttemptResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
    if response.is_success:
        return AttemptResult(Outcome.DELIVERED, str(response.status_code))
    if response.status_code >= 500 or response.status_code in _RETRIED_STATUS:
        return AttemptResult(Outcome.RETRY, f"HTTP {response.status_code}")
    return AttemptResult(Outcome.REJECTED, f"HTTP {response.status_code}")


@dataclass(frozen=True)
class Delivery:
    """Where a job's webhook stands after an attempt: delivered, failed for good, or pending a retry."""

    state: WebhookState
    attempts: int
    detail: str


class WebhookDispatcher:
    """Delivers the webhook of ended jobs and records each attempt on the job row, so that a delivery
    interrupted by a restart resumes where it stopped. Needs a ``secret``: webhooks are always signed.
    ``outbound`` decides which URLs may be contacted (see the module doc)."""

    def __init__(
        self,
        store: JobStore,
        secret: str,
        outbound: OutboundPolicy,
        policy: WebhookRetries | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._store = store
        self._secret = secret
        self.outbound = outbound
        self.policy = policy or WebhookRetries()
        self._client = httpx.Client(timeout=self.policy.timeout_s, follow_redirects=False, transport=transport)

    def attempt(self, job_id: str) -> Delivery | None:
        """One POST for ``job_id``; None when there is nothing to send (no webhook, or already settled)."""
        job = self._store.get(job_id)
        if job.webhook_url is None or job.webhook_state is not WebhookState.PENDING:
            return None
        attempt = job.webhook_attempts + 1
        result = post_once(self._client, self.outbound, job.webhook_url, webhook_body(job), self._secret, job.id)
        log.info("webhook of job %s, attempt %d: %s", job.id, attempt, result.detail)
        if result.outcome is Outcome.DELIVERED:
            state = WebhookState.DELIVERED
        elif result.outcome is Outcome.REJECTED or attempt >= self.policy.attempts:
            log.warning("webhook of job %s failed after %d attempts: %s", job.id, attempt, result.detail)
            state = WebhookState.FAILED
        else:
            state = WebhookState.PENDING
        self._store.set_webhook(job.id, state, attempt)
        return Delivery(state, attempt, result.detail)

    def run(self, job_id: str, sleep: Callable[[float], bool]) -> Delivery | None:
        """Attempt until delivered or given up, waiting ``policy.delay(n)`` after failed try ``n``.
        ``sleep(seconds)`` returns True to stop early (shutdown); the webhook then stays pending."""
        while True:
            delivery = self.attempt(job_id)
            if delivery is None or delivery.state is not WebhookState.PENDING:
                return delivery
            if sleep(self.policy.delay(delivery.attempts)):
                return delivery

    def close(self) -> None:
        self._client.close()
