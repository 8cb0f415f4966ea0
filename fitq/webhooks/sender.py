"""One attempt of a webhook: check where it goes, sign it, POST it, read the status code.

The URL is checked again here, against every address its host resolves to now, and the
request connects to the address that was checked (the name is not resolved a second time,
so it cannot be rebound in between); TLS still verifies the certificate against the name.
Redirects are not followed; proxies from the environment are not used; the answer's body
is never read."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from fitq.store.types import utcnow
from fitq.webhooks.urls import (
    Resolver,
    UnsafeUrl,
    WebhookPolicy,
    check_resolved,
    check_url,
    system_resolver,
)

USER_AGENT = "fitq-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(secret: str, webhook_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers, the signature made by the specification's library."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, timestamp, body),
    }


def send(
    url: str,
    secret: str,
    webhook_id: str,
    body: str,
    *,
    policy: WebhookPolicy,
    timeout: float,
    resolve: Resolver = system_resolver,
    now: Callable[[], datetime] = utcnow,
    verify: ssl.SSLContext | bool = True,
) -> Outcome:
    """One attempt; ``verify``: how TLS certificates are checked (the system's CAs)."""
    at = now()
    started = time.perf_counter()

    def outcome(status_code: int | None, error: str | None) -> Outcome:
        return Outcome(at, status_code, error, (time.perf_counter() - started) * 1000)

    try:
        target = check_url(url, policy)
        address = check_resolved(target, policy, resolve)[0]
    except UnsafeUrl as exc:
        return outcome(None, f"refused: {exc}")
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = parts._replace(netloc=f"{literal}:{target.port}").geturl()
    headers = {
        "host": parts.netloc,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signed_headers(secret, webhook_id, at, body),
    }
    extensions = {"sni_hostname": target.host} if parts.scheme == "https" else {}
    try:
        with (
            httpx.Client(
                timeout=timeout, follow_redirects=False, trust_env=False, verify=verify
            ) as client,
            client.stream(
                "POST", pinned, content=body.encode(), headers=headers, extensions=extensions
            ) as response,
        ):
            code = response.status_code
    except httpx.TimeoutException:
        return outcome(None, f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return outcome(None, f"could not connect to {target.host}:{target.port}: {exc}")
    if 200 <= code < 300:
        return outcome(code, None)
    if 300 <= code < 400:
        return outcome(code, f"answered {code}: a redirect, which is not followed")
    return outcome(code, f"answered {code}")
