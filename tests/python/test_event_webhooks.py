"""The gateway's event webhooks against the official Standard Webhooks Python library.

The real binary (``serve`` on the embedded default: SQLite, the built-in Twilio emulator) posts
its events to a receiver in this process. Every delivery must verify with
``standardwebhooks.Webhook(secret).verify(body, headers)``; an altered body, a signature by
another secret and a timestamp older than the library's five minutes must not. During a secret
rotation, each delivery must verify with the old secret and with the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from binaries import free_port, gateway_binary, stop, wait_healthy

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

JWT_SECRET = "events-python-test-secret-0123456789"
# whsec_ and base64 of 32 bytes.
EVENTS_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAECAwQFBgc="
OTHER_SECRET = "whsec_" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Received:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    def on(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for p, h, b in self.requests if p == path]


def start_receiver(received: Received) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the standard library's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with received.lock:
                received.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def call(base: str, method: str, path: str, token: str | None = None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with OPENER.open(request, timeout=10) as response:
        text = response.read().decode()
        return response.status, (json.loads(text) if text else None)


def wait_for(what: str, check, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def gateway():
    received = Received()
    server, receiver = start_receiver(received)
    workdir = Path(tempfile.mkdtemp(prefix="wg-events-py-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite://{workdir}/gateway.db",
        "BIND_ADDR": f"127.0.0.1:{port}",
        "JWT_SECRET": JWT_SECRET,
        "EVENTS_URL": receiver + "/all",
        "EVENTS_SECRET": EVENTS_SECRET,
        "EVENTS_RETRY_BASE_MS": "100",
        # The receiver is on loopback: let an endpoint added over the API point there.
        "EVENTS_ALLOW_PRIVATE_URLS": "true",
        "RUST_LOG": "warn",
    }
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "REDIS_URL"):
        env.pop(name, None)
    log_path = workdir / "gateway.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(gateway_binary()), "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(process, base, log_path)
        token = subprocess.run(
            [str(gateway_binary()), "token"], cwd=workdir, env=env, capture_output=True, check=True, text=True
        ).stdout.strip()
        yield base, token, receiver, received
    finally:
        stop(process)
        server.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


def write_in(base: str, phone: str, body: str):
    """The contact writes (the embedded emulator posts a signed webhook to the gateway)."""
    status, _ = call(base, "POST", "/emulator/_emulator/inbound", body={"From": phone, "Body": body})
    assert status == 200


def test_every_delivery_verifies_with_the_standardwebhooks_library(gateway):
    base, token, _, received = gateway
    write_in(base, "+14155550301", "hello")
    status, message = call(base, "POST", "/api/v1/whatsapp/send", token, {"to": "+14155550301", "body": "hi there"})
    assert status == 202
    # message.received, then pending→queued→sent→delivered→read.
    deliveries = wait_for("five events", lambda: (r := received.on("/all")) and len(r) >= 5 and r)
    webhook = Webhook(EVENTS_SECRET)
    types = []
    for headers, body in deliveries:
        payload = webhook.verify(body, headers)
        assert payload == json.loads(body)
        assert headers["webhook-id"].startswith("evt_")
        types.append(payload["type"])
        # Another secret does not verify it; neither does an altered body.
        with pytest.raises(WebhookVerificationError):
            Webhook(OTHER_SECRET).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            webhook.verify(body.replace(b'"data"', b'"date"'), headers)
    assert types.count("message.status_changed") == 4 and "message.received" in types
    statuses = [json.loads(b)["data"]["status"] for _, b in deliveries if json.loads(b)["type"] == "message.status_changed"]
    assert sorted(statuses) == sorted(["queued", "sent", "delivered", "read"])
    mine = sorted((json.loads(b)["data"] for _, b in deliveries if json.loads(b)["data"]["message_id"] == message["id"]), key=lambda d: d["sequence"])
    assert [d["sequence"] for d in mine] == [1, 2, 3, 4]

    # A delivery signed correctly but six minutes ago is refused as too old.
    headers, body = deliveries[0]
    old = datetime.now(timezone.utc) - timedelta(minutes=6)
    stale = dict(headers)
    stale["webhook-timestamp"] = str(int(old.timestamp()))
    stale["webhook-signature"] = webhook.sign(headers["webhook-id"], old, body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhook.verify(body, stale)


def test_both_secrets_verify_during_a_rotation(gateway):
    base, token, receiver, received = gateway
    status, endpoint = call(
        base, "POST", "/api/v1/events/endpoints", token, {"url": receiver + "/rotating", "event_types": ["message.received"]}
    )
    assert status == 201
    old_secret = endpoint["secret"]
    status, rotated = call(base, "POST", f"/api/v1/events/endpoints/{endpoint['id']}/rotate-secret", token, {"grace_s": 3600})
    assert status == 200
    new_secret = rotated["secret"]
    assert new_secret != old_secret and new_secret.startswith("whsec_")
    write_in(base, "+14155550302", "after the rotation")
    headers, body = wait_for("the event after the rotation", lambda: received.on("/rotating"))[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret):
        assert Webhook(secret).verify(body, headers)["data"]["body"] == "after the rotation"
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(body, headers)

    # The grace period over (a rotation with none), only the newest secret signs.
    status, last = call(base, "POST", f"/api/v1/events/endpoints/{endpoint['id']}/rotate-secret", token, {"grace_s": 0})
    assert status == 200
    write_in(base, "+14155550303", "after the second rotation")
    headers, body = wait_for("the event after the second rotation", lambda: received.on("/rotating")[1:])[0]
    assert Webhook(last["secret"]).verify(body, headers)["data"]["body"] == "after the second rotation"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(body, headers)
