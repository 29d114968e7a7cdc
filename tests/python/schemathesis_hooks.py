"""Schemathesis hooks for the contract fuzz run (`test_openapi_contract.py`).

- Every request to Twilio's two webhooks (`/status`, `/webhook`) is signed as Twilio signs it,
  with the auth token of the gateway under test (`WG_FUZZ_TWILIO_TOKEN`), over the URL and the
  form parameters exactly as they go on the wire. Without it the fuzzer could only ever see 403s
  from those endpoints.
- The document's `phone-number` format (E.164, optionally `whatsapp:`-prefixed, of a number the
  numbering plan assigns) gets a generator of such numbers: the pattern says the syntax, but
  whether `+1 000 …` is assigned is a fact about the world no pattern can state, and numbers drawn
  from the pattern alone would be refused as unassigned.

A case that already carries an `X-Twilio-Signature` (the fuzzer's own, or the `ignored_auth`
check's deliberately wrong one) keeps it: the gateway must refuse it.
"""

from __future__ import annotations

import os
import re
import uuid
from urllib.parse import parse_qsl

import requests
import schemathesis
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

SIGNED_PATHS = {"/api/v1/whatsapp/status", "/api/v1/whatsapp/webhook"}
BASE_URL = os.environ["WG_FUZZ_BASE_URL"]
VALIDATOR = RequestValidator(os.environ["WG_FUZZ_TWILIO_TOKEN"])

# Assigned numbers in several numbering plans: each prefix followed by any two digits.
PHONE_PREFIXES = ["+141586753", "+121273600", "+165025300", "+4479111234", "+336123456", "+49151123456", "+55119876543",
                  "+9198765432", "+614123456"]
ASSIGNED = re.compile("(whatsapp:)?(" + "|".join(re.escape(p) for p in PHONE_PREFIXES) + r")[0-9]{2}")
PHONE_NUMBERS = st.builds(
    lambda channel, prefix, digits: channel + prefix + digits,
    st.sampled_from(["", "whatsapp:"]),
    st.sampled_from(PHONE_PREFIXES),
    st.text("0123456789", min_size=2, max_size=2),
)
# Where the document uses the format: (operation path, location, name).
PHONE_FIELDS = [
    ("/api/v1/whatsapp/send", "body", "to"),
    ("/api/v1/whatsapp/messages", "query", "phone"),
    ("/api/v1/whatsapp/messages/retry", "query", "phone"),
    ("/api/v1/whatsapp/delivery-metrics", "query", "to_phone"),
    ("/api/v1/whatsapp/phones/{phone}/performance", "path_parameters", "phone"),
]
schemathesis.openapi.format("phone-number", PHONE_NUMBERS)
# The `whatsapp-sender` format: a sender the gateway under test is configured with (the fuzz run
# uses the default, the sandbox number). Other well-formed senders are refused with a 422 naming
# `from`, as the document says.
SENDERS = ["+14155238886", "whatsapp:+14155238886"]
schemathesis.openapi.format("whatsapp-sender", st.sampled_from(SENDERS))


def wire_request(case) -> requests.PreparedRequest:
    """The request as the transport will send it (the same serialisation, prepared the same way)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    request = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        params=kwargs.get("params"),
        data=kwargs.get("data"),
        json=kwargs.get("json"),
        headers=kwargs.get("headers"),
    )
    return request.prepare()


def honour_phone_format(case) -> None:
    """The coverage phase draws boundary values from a pattern alone (it does not know custom
    formats): in a case meant to be valid, a phone number outside the format becomes one inside
    it. Cases meant to be invalid keep theirs."""
    generation = getattr(case.meta, "generation", None)
    if generation is None or not generation.mode.is_positive:
        return
    for path, location, name in PHONE_FIELDS:
        values = getattr(case, location, None)
        if case.operation.path != path or not isinstance(values, dict):
            continue
        value = values.get(name)
        if isinstance(value, str) and not ASSIGNED.fullmatch(value):
            digits = sum(value.encode("utf-8")) % 100
            values[name] = PHONE_PREFIXES[len(value) % len(PHONE_PREFIXES)] + f"{digits:02d}"
    if case.operation.path == "/api/v1/whatsapp/send" and isinstance(case.body, dict):
        sender = case.body.get("from")
        if isinstance(sender, str) and sender not in SENDERS:
            case.body["from"] = SENDERS[len(sender) % len(SENDERS)]


IDEMPOTENCY_HEADERS = {"idempotency-key", "x-idempotency-key"}
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")


def fresh_idempotency_keys(case) -> None:
    """A valid key of a generated send is made unique: the document (and the IETF draft) refuse
    one key reused with another body, and generated bodies sharing a short key is the fuzzer's
    doing, not a client's. Invalid keys stay as generated, to be refused."""
    for name, value in list((case.headers or {}).items()):
        if name.lower() in IDEMPOTENCY_HEADERS and isinstance(value, str) and IDEMPOTENCY_KEY.fullmatch(value):
            case.headers[name] = value[:222] + "-" + uuid.uuid4().hex


@schemathesis.auth(refresh_interval=None).skip_for(path=sorted(SIGNED_PATHS))
class Bearer:
    """The document's `bearer` scheme, for every operation but the two webhooks."""

    def get(self, case, context):
        return os.environ["WG_FUZZ_BEARER"]

    def set(self, case, token, context):
        headers = case.headers if case.headers is not None else {}
        headers["Authorization"] = f"Bearer {token}"
        case.headers = headers


@schemathesis.auth(refresh_interval=None).apply_to(path=sorted(SIGNED_PATHS))
class TwilioSignature:
    """The document's `twilio_signature` scheme: the signature of the very request being sent.
    As an auth provider (not a header of the case), the checks that probe authentication
    (`ignored_auth`, `missing_required_header`) can leave it out or spoil it."""

    def get(self, case, context):
        return VALIDATOR

    def set(self, case, validator, context):
        prepared = wire_request(case)
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        content_type = (prepared.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        else:
            params = []
        headers = case.headers if case.headers is not None else {}
        headers["X-Twilio-Signature"] = validator.compute_signature(prepared.url, MultiDict(params))
        case.headers = headers


@schemathesis.hook
def before_call(context, case, kwargs):
    honour_phone_format(case)
    if case.operation.path == "/api/v1/whatsapp/send":
        fresh_idempotency_keys(case)
