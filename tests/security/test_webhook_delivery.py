"""Webhook delivery connects only to the address it checked (no DNS rebinding), keeps the host name for Host, SNI
and certificate verification, ignores proxies from the environment, stops at one total deadline, and runs on a
queue of its own."""

from __future__ import annotations

import datetime
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alliance.celery import app
from inference.models import Job
from inference.services.webhook_delivery import webhook_deliver
from inference.webhook_security import signing_secret, verify_signature
from tests.factories import make_partner

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.215.14"


class _Recorder(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    _Recorder.requests = []
    httpd = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fast(settings):
    settings.ALLIANCE_WEBHOOK_TIMEOUT_SECONDS = 1.0
    settings.ALLIANCE_WEBHOOK_ALLOW_PRIVATE = False
    return settings


def _job(url: str) -> Job:
    partner = make_partner()
    return Job.objects.create(
        partner=partner, capability="keyword_extraction", model="m", queue="embeddings", status="succeeded",
        input={"text": "x"}, output={"keywords": []}, webhook_url=url,
    )  # fmt: skip


def _resolver(*answers: list[str]) -> tuple[Callable[[str, int], list[str]], list[str]]:
    """A resolver whose n-th call answers answers[n] (the last one after that); records the names asked."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked


def _deliver(job: Job, resolve: Callable[[str, int], list[str]]):
    delivered = webhook_deliver(job_id=str(job.pk), attempt=1, resolve=resolve)
    return delivered, job.webhook_deliveries.get(attempt=1)


def test_a_host_that_rebinds_to_a_private_address_after_the_check_cannot_reach_it(fast, server):
    """Answers a public address first, then the loopback where the server listens: the delivery resolves once,
    connects to the checked public address, and the private server never hears from it."""
    resolve, asked = _resolver([PUBLIC], ["127.0.0.1"], ["127.0.0.1"])
    job = _job(f"http://rebind.partner.test:{server.server_port}/hook")
    _deliver(job, resolve)  # whatever answers at the public address (nothing, or a network's interceptor)
    assert _Recorder.requests == []
    assert asked == ["rebind.partner.test"]  # once, for both the check and the connection


@pytest.mark.parametrize("answer", [["127.0.0.1"], [PUBLIC, "127.0.0.1"], ["10.0.0.8"], ["::ffff:127.0.0.1"]])
def test_a_host_answering_any_private_address_is_refused_without_connecting(fast, server, answer):
    resolve, asked = _resolver(answer)
    delivered, delivery = _deliver(_job(f"http://evil.partner.test:{server.server_port}/hook"), resolve)
    assert not delivered and _Recorder.requests == [] and asked == ["evil.partner.test"]
    assert "private" in delivery.error


def test_the_connection_goes_to_the_checked_address_with_the_host_name_in_host(fast, server):
    fast.ALLIANCE_WEBHOOK_ALLOW_PRIVATE = True  # the test server is on the loopback
    resolve, _ = _resolver(["127.0.0.1"])
    job = _job(f"http://hooks.partner.test:{server.server_port}/alliance/hook?source=jobs")
    delivered, delivery = _deliver(job, resolve)
    assert delivered and delivery.status_code == 204
    [request] = _Recorder.requests
    assert request["path"] == "/alliance/hook?source=jobs"
    assert request["headers"]["Host"] == f"hooks.partner.test:{server.server_port}"
    assert verify_signature(signing_secret(job.partner), request["body"], request["headers"]["X-Alliance-Signature"])


def test_proxies_from_the_environment_are_not_used(fast, server, monkeypatch):
    fast.ALLIANCE_WEBHOOK_ALLOW_PRIVATE = True
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    resolve, _ = _resolver(["127.0.0.1"])
    delivered, _ = _deliver(_job(f"http://hooks.partner.test:{server.server_port}/hook"), resolve)
    assert delivered and len(_Recorder.requests) == 1


class _Trickle(BaseHTTPRequestHandler):
    """Answers one byte every 0.2 s, forever: no single read ever waits long."""

    def do_POST(self) -> None:
        try:
            while True:
                self.wfile.write(b"H")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


class _Silent(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(5)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("handler", [_Trickle, _Silent], ids=["trickling", "silent"])
def test_a_slow_endpoint_is_cut_at_the_total_deadline(fast, handler):
    fast.ALLIANCE_WEBHOOK_ALLOW_PRIVATE = True
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        resolve, _ = _resolver(["127.0.0.1"])
        started = time.monotonic()
        delivered, delivery = _deliver(_job(f"http://slow.partner.test:{httpd.server_port}/hook"), resolve)
        took = time.monotonic() - started
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not delivered and "did not answer within 1 s" in delivery.error
    assert 0.9 <= took < 2.5, took


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A CA (its PEM returned) and a certificate for `name` signed by it (chain and key in one PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_pem, server_pem = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_pem.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_pem, server_pem


def test_https_keeps_sni_and_verifies_the_certificate_against_the_host_name(fast, tmp_path, monkeypatch):
    fast.ALLIANCE_WEBHOOK_ALLOW_PRIVATE = True
    ca_pem, server_pem = _certificate(tmp_path, "hooks.partner.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))  # the test CA is the only one trusted
    seen_sni: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    _Recorder.requests = []
    httpd = HTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        resolve, _ = _resolver(["127.0.0.1"])
        delivered, delivery = _deliver(_job(f"https://hooks.partner.test:{httpd.server_port}/hook"), resolve)
        assert delivered, delivery.error
        assert seen_sni == ["hooks.partner.test"]
        assert _Recorder.requests[0]["headers"]["Host"] == f"hooks.partner.test:{httpd.server_port}"
        # The same address under a name the certificate does not carry: refused by verification.
        delivered, delivery = _deliver(_job(f"https://other.partner.test:{httpd.server_port}/hook"), resolve)
        assert not delivered and "certificate" in delivery.error.lower(), delivery.error
        assert len(_Recorder.requests) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_deliveries_go_to_their_own_queue_which_the_embeddings_worker_line_serves():
    route = app.amqp.router.route({}, "inference.tasks.deliver_webhook", args=("job",), kwargs={})
    assert route["queue"].name == "webhooks"
    reaper = app.amqp.router.route({}, "inference.tasks.reap_stale_jobs", args=(), kwargs={})
    assert reaper["queue"].name == "default"
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    line = next(line for line in procfile.splitlines() if line.startswith("worker-embeddings:"))
    assert "exec celery -A alliance worker -Q embeddings,default,webhooks " in line
