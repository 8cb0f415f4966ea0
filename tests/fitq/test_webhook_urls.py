"""Where a webhook may be sent: https to public addresses, checked as written and again
after resolving, in the user's words."""

from __future__ import annotations

import ipaddress

import pytest

from fitq.settings import Settings
from fitq.webhooks.urls import (
    Target,
    UnsafeUrl,
    WebhookPolicy,
    check_resolved,
    check_url,
    policy_of,
    system_resolver,
)

STRICT = WebhookPolicy()
LAPTOP = WebhookPolicy(allow_loopback=True)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "http://hooks.example.com/x",
            "expected an https URL (plain http: FITQ_WEBHOOK_ALLOW_HTTP)",
        ),
        ("ftp://hooks.example.com/x", "expected an https URL"),
        ("https:///path", "with a host"),
        (
            "https://user:secret@hooks.example.com/",
            "without credentials, received 'https://***@hooks.example.com/'",
        ),
        ("https://127.0.0.1/", "loopback (FITQ_WEBHOOK_ALLOW_LOOPBACK=true"),
        ("https://[::1]:8443/", "loopback"),
        ("https://10.1.2.3/", "private"),
        ("https://192.168.0.10/", "private"),
        ("https://172.16.5.4/", "private"),
        ("https://169.254.169.254/latest/meta-data", "a cloud metadata address"),
        ("https://[fd00:ec2::254]/", "a cloud metadata address"),
        ("https://169.254.10.10/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://100.64.0.1/", "reserved"),
        ("https://hooks.example.com:99999/", "expected a URL"),
    ],
)
def test_unsafe_urls_are_refused_naming_why(url: str, words: str) -> None:
    with pytest.raises(UnsafeUrl) as refused:
        check_url(url, STRICT)
    assert words in str(refused.value)
    assert "secret" not in str(refused.value)


def test_a_public_https_url_and_its_port() -> None:
    assert check_url("https://hooks.example.com/fitq", STRICT) == Target(
        "https://hooks.example.com/fitq", "hooks.example.com", 443
    )
    assert check_url("https://93.184.216.34:8443/", STRICT).port == 8443


def test_the_settings_make_the_policy() -> None:
    settings = Settings(webhook_allow_loopback=True)
    assert policy_of(settings) == LAPTOP and policy_of(Settings()) == STRICT


def test_loopback_and_plain_http_where_allowed() -> None:
    assert check_url("http://127.0.0.1:9000/hook", LAPTOP).port == 9000
    assert check_url("http://hooks.example.com/", WebhookPolicy(allow_http=True)).port == 80
    with pytest.raises(UnsafeUrl, match="private"):
        check_url("http://10.0.0.1/", LAPTOP)  # loopback only: not the private network


def test_a_name_is_checked_at_every_address_it_resolves_to() -> None:
    target = check_url("https://hooks.example.com/", STRICT)
    public = ipaddress.ip_address("93.184.216.34")
    assert check_resolved(target, STRICT, lambda h, p: ["93.184.216.34"]) == [public]
    with pytest.raises(UnsafeUrl, match=r"hooks.example.com \(10.0.0.7\): private"):
        check_resolved(target, STRICT, lambda h, p: ["93.184.216.34", "10.0.0.7"])  # rebinding
    with pytest.raises(UnsafeUrl, match="resolves"):
        check_resolved(target, STRICT, lambda h, p: [])


def test_localhost_resolves_to_loopback_on_this_machine() -> None:
    target = check_url("https://localhost:9/", STRICT)
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_resolved(target, STRICT, system_resolver)
    assert all(a.is_loopback for a in check_resolved(target, LAPTOP, system_resolver))
