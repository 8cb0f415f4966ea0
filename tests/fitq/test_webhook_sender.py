"""One signed attempt over real TLS: the request goes to the address that was checked, yet
the certificate is verified against the URL's name (SNI and Host carry it), so a pinned
address never weakens TLS. The CA and certificates are made here (``cryptography``)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook

from fitq.webhooks.sender import send
from fitq.webhooks.urls import WebhookPolicy

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOOPBACK = WebhookPolicy(allow_loopback=True)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject: str, issuer: str, key, signer, dns: str | None, ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ssl.SSLContext, Path]]:
    """A client context trusting a CA made here, and a folder with that CA's certificate
    for ``hooks.test`` (and its key)."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("fitq test CA", "fitq test CA", ca_key, ca_key, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("hooks.test", "fitq test CA", key, ca_key, "hooks.test", ca=False)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    yield client, folder


@pytest.fixture
def server(tls) -> Iterator[tuple[int, list[dict[str, str]], list[str | None]]]:
    _, folder = tls
    seen: list[dict[str, str]] = []
    names: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen.append({**{k.lower(): v for k, v in self.headers.items()}, "body": body.decode()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], seen, names
    httpd.shutdown()
    httpd.server_close()


def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_tls_is_verified_against_the_name_while_the_checked_address_is_used(tls, server) -> None:
    client_tls, _ = tls
    port, seen, names = server
    outcome = send(
        f"https://hooks.test:{port}/fitq", SECRET, "msg_1", '{"type":"webhook.test"}',
        policy=LOOPBACK, timeout=5, resolve=to_loopback, verify=client_tls,
    )  # fmt: skip
    assert (outcome.status_code, outcome.error) == (204, None)
    assert names == ["hooks.test"]
    [request] = seen
    assert request["host"] == f"hooks.test:{port}"
    body = request.pop("body")
    assert Webhook(SECRET).verify(body, request) == {"type": "webhook.test"}


def test_a_certificate_for_another_name_is_refused(tls, server) -> None:
    client_tls, _ = tls
    port, seen, _ = server
    outcome = send(
        f"https://other.test:{port}/fitq", SECRET, "msg_1", "{}",
        policy=LOOPBACK, timeout=5, resolve=to_loopback, verify=client_tls,
    )  # fmt: skip
    assert outcome.status_code is None and seen == []
    assert "could not connect to other.test" in (outcome.error or "")
    assert "certificate" in (outcome.error or "").lower() or "hostname" in (outcome.error or "")
