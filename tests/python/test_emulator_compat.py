"""Compatibility of the Twilio emulator with Twilio's official Python library.

The emulator runs as a subprocess (command in ``EMULATOR_CMD``, default ``whatsapp-gateway emulator``
from cargo's debug directory, see ``binaries.py``) on ``EMULATOR_BIND_ADDR=127.0.0.1:0``;
its URL is read from the one line it prints. ``twilio.rest.Client`` talks to it with
``client.api.base_url`` overridden, and a small HTTP server on 127.0.0.1 receives its status
callbacks and inbound webhooks and checks each with ``twilio.request_validator.RequestValidator``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from binaries import gateway_binary, stop

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "python-compat-token"
SENDER = "whatsapp:+14155238886"
TEMPLATE = "HX" + "0123456789abcdef" * 2
WAIT_SECONDS = 10.0

# Loopback traffic must never go through a proxy configured for package registries.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
for name in ("TWILIO_EDGE", "TWILIO_REGION"):
    os.environ.pop(name, None)


class Webhooks:
    """A tiny HTTP server that records every POST and validates its signature."""

    def __init__(self, token: str) -> None:
        self.validator = RequestValidator(token)
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        webhooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode("utf-8")
                params = dict(parse_qsl(raw, keep_blank_values=True))
                url = f"http://127.0.0.1:{webhooks.port}{self.path}"
                signature = self.headers.get("X-Twilio-Signature", "")
                call = {
                    "path": self.path,
                    "params": params,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "valid": webhooks.validator.validate(url, params, signature),
                }
                with webhooks.lock:
                    webhooks.calls.append(call)
                body = b'<?xml version="1.0" encoding="UTF-8"?><Response />'
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def for_sid(self, sid: str) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["params"].get("MessageSid") == sid]

    def wait_for(self, sid: str, count: int) -> list[dict]:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            calls = self.for_sid(sid)
            if len(calls) >= count:
                return calls
            time.sleep(0.02)
        raise AssertionError(f"expected {count} webhooks for {sid}, got {self.for_sid(sid)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhooks():
    server = Webhooks(AUTH_TOKEN)
    yield server
    server.close()


def _read_listening_line(process: subprocess.Popen) -> str:
    """The first stdout line, within WAIT_SECONDS."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(WAIT_SECONDS)
    if not result or not result[0]:
        process.kill()
        raise AssertionError(f"emulator printed no 'listening on' line; stderr: {process.stderr.read()}")
    return result[0]


@pytest.fixture(scope="module")
def emulator(webhooks):
    command = shlex.split(os.environ.get("EMULATOR_CMD", f"{gateway_binary()} emulator"))
    executable = ROOT / command[0]
    if executable.exists():
        command[0] = str(executable)
    env = dict(
        os.environ,
        EMULATOR_BIND_ADDR="127.0.0.1:0",
        EMULATOR_ACCOUNT_SID=ACCOUNT_SID,
        EMULATOR_AUTH_TOKEN=AUTH_TOKEN,
        EMULATOR_DELAY_SENT_MS="20",
        EMULATOR_DELAY_DELIVERED_MS="40",
        EMULATOR_DELAY_READ_MS="60",
        EMULATOR_INBOUND_WEBHOOK_URL=webhooks.url("/whatsapp/inbound"),
    )
    try:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except FileNotFoundError as error:
        raise AssertionError(
            f"cannot start {command!r} ({error}); build it with `cargo build -p whatsapp-gateway` "
            "or set EMULATOR_CMD"
        ) from error
    line = _read_listening_line(process)
    match = re.search(r"twilio-emulator listening on (http://\S+) account_sid=(AC[0-9a-fA-F]{32})", line)
    assert match, f"unexpected first line: {line!r}"
    assert match.group(2) == ACCOUNT_SID
    yield match.group(1)
    stop(process)


@pytest.fixture
def client(emulator) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = emulator
    return client


def _post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=WAIT_SECONDS) as response:
        return json.loads(response.read())


def _recipient(n: int) -> str:
    return f"whatsapp:+1415555{n:04d}"


def test_create_and_fetch_parse_into_message_instances(client):
    message = client.messages.create(to=_recipient(1), from_=SENDER, body="Hello! 👍")
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.account_sid == ACCOUNT_SID
    assert message.direction == "outbound-api"
    assert message.num_segments == "1" and message.num_media == "0"
    assert message.error_code is None and message.price is None
    assert message.to == _recipient(1) and message.from_ == SENDER
    assert isinstance(message.date_created, datetime) and message.date_created.tzinfo is not None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"

    fetched = client.messages(message.sid).fetch()
    assert fetched.sid == message.sid
    assert fetched.body == "Hello! 👍"
    assert fetched.date_created == message.date_created


def test_list_filters_by_to_and_pages_through_next_page_uri(client):
    to = _recipient(2)
    created = [client.messages.create(to=to, from_=SENDER, body=f"n{i}").sid for i in range(5)]
    client.messages.create(to=_recipient(3), from_=SENDER, body="other")

    listed = client.messages.list(to=to, page_size=2)
    assert [m.sid for m in listed] == list(reversed(created))

    first = client.messages.page(to=to, page_size=2)
    assert [m.sid for m in first] == list(reversed(created))[:2]
    second = first.next_page()
    assert [m.sid for m in second] == list(reversed(created))[2:4]
    third = second.next_page()
    assert [m.sid for m in third] == list(reversed(created))[4:]
    assert third.next_page() is None


def test_errors_raise_twilio_rest_exception_with_twilios_code(client, emulator):
    with pytest.raises(TwilioRestException) as missing_body:
        client.messages.create(to=_recipient(4), from_=SENDER)
    assert (missing_body.value.status, missing_body.value.code) == (400, 21602)

    with pytest.raises(TwilioRestException) as bad_to:
        client.messages.create(to="whatsapp:+1", from_=SENDER, body="x")
    assert (bad_to.value.status, bad_to.value.code) == (400, 21211)
    assert "Unable to create record" in bad_to.value.msg

    wrong = Client(ACCOUNT_SID, "wrong-token")
    wrong.api.base_url = emulator
    with pytest.raises(TwilioRestException) as unauthorized:
        wrong.messages.create(to=_recipient(4), from_=SENDER, body="x")
    assert (unauthorized.value.status, unauthorized.value.code) == (401, 20003)

    with pytest.raises(TwilioRestException) as not_found:
        client.messages("SM" + "0" * 32).fetch()
    assert (not_found.value.status, not_found.value.code) == (404, 20404)


def test_every_callback_passes_the_official_request_validator(client, emulator, webhooks):
    callback = webhooks.url("/twilio/status?tenant=python")
    template = client.messages.create(
        to=_recipient(5), from_=SENDER, content_sid=TEMPLATE, status_callback=callback
    )
    calls = webhooks.wait_for(template.sid, 3)
    assert [c["params"]["MessageStatus"] for c in calls] == ["sent", "delivered", "read"]
    for call in calls:
        assert call["valid"], call
        assert call["params"]["ChannelPrefix"] == "whatsapp"
        assert call["headers"]["user-agent"] == "TwilioProxy/1.1"
    assert calls[2]["params"]["EventType"] == "READ"
    assert client.messages(template.sid).fetch().status == "read"

    # A free-form reply is delivered and read only once the customer has written in.
    answer = _post_json(
        f"{emulator}/_emulator/inbound", {"From": _recipient(6), "Body": "hi", "ProfileName": "Ada"}
    )
    assert answer["status"] == 200
    inbound = [c for c in webhooks.calls if c["path"] == "/whatsapp/inbound"]
    assert inbound and all(c["valid"] for c in inbound)
    assert inbound[-1]["params"]["MessageSid"] == answer["message_sid"]
    assert inbound[-1]["params"]["From"] == _recipient(6)
    reply = client.messages.create(to=_recipient(6), from_=SENDER, body="thanks", status_callback=callback)
    calls = webhooks.wait_for(reply.sid, 3)
    assert [c["params"]["MessageStatus"] for c in calls] == ["sent", "delivered", "read"]
    assert all(c["valid"] for c in calls)
