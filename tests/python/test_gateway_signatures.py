"""The gateway's webhook signature check against Twilio's official Python library.

Every request is signed with ``twilio.request_validator.RequestValidator(token).compute_signature``
over random form parameters (unicode, spaces, ``+``, ``&``, ``=``, ``'``, empty values, repeated
names as a ``multidict.MultiDict``, which the validator reads with ``getall``) and a URL made of
the gateway's ``PUBLIC_BASE_URL`` + ``/api/v1/whatsapp/status`` + a random raw query string. The
real binary (``target/debug/whatsapp-gateway serve``, or ``GATEWAY_BIN``) runs once per
``PUBLIC_BASE_URL`` form; each signed request is POSTed to its loopback address with the very same
query and parameters and must be answered 200, and an altered copy of each (a value changed, a
parameter added or removed, the query changed, the signature of another URL, another token) must
be answered 403.

The random seed is fixed (``SIGNATURE_TEST_SEED`` overrides it) and printed; every assertion
message repeats it with the case number.
"""

from __future__ import annotations

import http.client
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from binaries import free_port, gateway_binary, stop, wait_healthy

try:  # a dependency of twilio (through aiohttp); the validator reads it with getall()
    from multidict import MultiDict
except ImportError:  # pragma: no cover - fallback with the same interface

    class MultiDict:  # type: ignore[no-redef]
        def __init__(self, pairs):
            self._pairs = list(pairs)

        def __iter__(self):
            return iter([k for k, _ in self._pairs])

        def __len__(self):
            return len(self._pairs)

        def getall(self, name):
            return [v for k, v in self._pairs if k == name]


ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("SIGNATURE_TEST_SEED", "20240611"))
TOKEN = "sig-test-token-5f2d1c9a7e"
OTHER_TOKEN = "sig-test-token-5f2d1c9a7f"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
STATUS_PATH = "/api/v1/whatsapp/status"
CASES_PER_GATEWAY = 20  # 5 gateways: 100 valid requests and 100 altered ones
START_SECONDS = 30.0
TEST_SECONDS = 120.0

# The PUBLIC_BASE_URL forms, and the URL forms Twilio may sign for each (with or without the
# default port; for a non-standard port, the with-port form is the real one).
BASES = {
    "https-no-port": ("https://hooks.example.com", ["https://hooks.example.com", "https://hooks.example.com:443"]),
    "https-443": ("https://hooks.example.com:443", ["https://hooks.example.com:443", "https://hooks.example.com"]),
    "https-8443": ("https://hooks.example.com:8443", ["https://hooks.example.com:8443"]),
    "http-no-port": ("http://gw.test", ["http://gw.test", "http://gw.test:80"]),
    "http-8080": ("http://gw.test:8080", ["http://gw.test:8080"]),
}

# Names the status handler interprets: random parameters never take them.
RESERVED = {"MessageSid", "MessageStatus", "SmsSid", "SmsStatus", "ErrorCode", "mid", "bodySHA256"}
STATUSES = ["queued", "sent", "delivered", "read", "undelivered", "failed", "accepted"]
ALTERATIONS = ["value", "add", "remove", "query", "other_url", "token"]

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
SPECIAL = " +&='%\"!?#;/:@,.-_~*()[]{}<>|\\^`$"
UNICODE = "éüßñçøÅ中文字日本語한국어Ωπ€£¥\u00a0\u200b👍🎉😀🇫🇷"
CONTROL = "\n\t\r\x00\x7f"
# Characters a configured webhook URL may carry raw in its query (RFC 3986 query characters).
QUERY_RAW = ASCII + "-._~!$'()*+,;:@/?"


def random_text(rng: random.Random, max_len: int, allow_empty: bool = True) -> str:
    length = rng.randint(0 if allow_empty else 1, max_len)
    pools = [ASCII] * 6 + [SPECIAL] * 3 + [UNICODE] * 2 + [CONTROL]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(length))


def random_name(rng: random.Random) -> str:
    while True:
        kind = rng.random()
        if kind < 0.35:
            name = rng.choice(["AccountSid", "ApiVersion", "ChannelPrefix", "ChannelInstallSid", "From", "To",
                               "StructuredMessage", "EventType", "Body", "ProfileName", "WaId", "NumMedia"])
        elif kind < 0.4:
            name = ""
        else:
            name = random_text(rng, 12, allow_empty=False)
        if name not in RESERVED:
            return name


def random_value(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        return ""
    if kind < 0.25:
        return rng.choice(["It's amazing", "a+b=c&d", "100%", "+14155550123", "whatsapp:+14155238886", " ", "'", "&", "="])
    return random_text(rng, 24)


def random_sid(rng: random.Random) -> str:
    return "SM" + "".join(rng.choice("0123456789abcdef") for _ in range(32))


def random_params(rng: random.Random) -> list[tuple[str, str]]:
    pairs = [("MessageSid", random_sid(rng)), ("MessageStatus", rng.choice(STATUSES))]
    for _ in range(rng.randint(0, 8)):
        pairs.append((random_name(rng), random_value(rng)))
    # Repeated names: different values, and sometimes the very same pair twice.
    for _ in range(rng.randint(0, 2)):
        name = random_name(rng)
        for _ in range(rng.randint(2, 3)):
            pairs.append((name, random_value(rng)))
    if rng.random() < 0.2:
        pairs.append(rng.choice(pairs[2:] or pairs))
    rng.shuffle(pairs)
    return pairs


def random_query(rng: random.Random) -> str | None:
    """A raw query string as a configured URL may carry it, or None (no '?')."""
    if rng.random() < 0.3:
        return None
    parts = []
    for _ in range(rng.randint(1, 4)):
        style = rng.random()
        if style < 0.4:
            parts.append(quote(random_text(rng, 8), safe="") + "=" + quote(random_text(rng, 10), safe=""))
        elif style < 0.6:
            parts.append(quote_plus(random_text(rng, 8)) + "=" + quote_plus(random_text(rng, 10)))
        elif style < 0.8:
            raw = lambda n: "".join(rng.choice(QUERY_RAW) for _ in range(rng.randint(0, n)))  # noqa: E731
            parts.append(raw(8) + rng.choice(["=", "", "=="]) + raw(10))
        elif style < 0.9:
            parts.append(rng.choice(["tenant=acme", "Body=It's+amazing", "a=%c3%a9", "x=%2B1", "flag", "", "q=a=b"]))
        else:
            parts.append("")
    query = "&".join(parts)
    # An empty query ("…/status?") is left out: urlunparse drops the bare "?", so Twilio's own
    # validator cannot tell it from no query at all.
    return query or None


def form_body(rng: random.Random, pairs: list[tuple[str, str]]) -> bytes:
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    return urlencode(shuffled, quote_via=rng.choice([quote_plus, quote])).encode("ascii")


def sign(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    return RequestValidator(token).compute_signature(url, MultiDict(pairs))


def official_validate(base: str, target: str, pairs: list[tuple[str, str]], signature: str) -> bool:
    """What Twilio's Python validator says about a request to `target` behind `base`."""
    return RequestValidator(TOKEN).validate(base + target, MultiDict(pairs), signature)


class Gateway:
    """`whatsapp-gateway serve` as a subprocess with one PUBLIC_BASE_URL."""

    def __init__(self, public_base_url: str) -> None:
        binary = gateway_binary()
        if not binary.exists():
            raise AssertionError(f"{binary} is missing: build it with `cargo build -p whatsapp-gateway`")
        self.dir = Path(tempfile.mkdtemp(prefix="wg-sig-"))
        self.port = free_port()
        self.public_base_url = public_base_url
        env = dict(
            os.environ,
            DATABASE_URL=f"sqlite://{self.dir}/g.db",
            BIND_ADDR=f"127.0.0.1:{self.port}",
            JWT_SECRET="sig-test-jwt-secret-0123456789",
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=TOKEN,
            TWILIO_WHATSAPP_FROM="+14155238886",
            TWILIO_API_BASE_URL="http://127.0.0.1:9",
            PUBLIC_BASE_URL=public_base_url,
            RUST_LOG="info",
            # Every request here comes from one client: keep any per-IP webhook limit out of the way.
            RATE_LIMIT_WEBHOOK_PER_MIN="1000000",
            RATE_LIMIT_API_PER_MIN="1000000",
            RATE_LIMIT_BURST="100000",
        )
        for name in ("TWILIO_SECONDARY_AUTH_TOKEN", "TWILIO_SECONDARY_AUTH_TOKEN_FILE", "REDIS_URL", "TRUST_PROXY",
                     "REQUIRE_HTTPS", "TLS_CERT_FILE", "TLS_KEY_FILE"):
            env.pop(name, None)
        self.log = open(self.dir / "gateway.log", "wb")
        self.process = subprocess.Popen([str(binary), "serve"], cwd=self.dir, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        self.log.flush()
        wait_healthy(self.process, f"http://127.0.0.1:{self.port}", self.dir / "gateway.log", START_SECONDS)

    def post(self, target: str, body: bytes, signature: str | None, content_type: str) -> tuple[int, str]:
        headers = {
            "Host": urlsplit(self.public_base_url).netloc,
            "Content-Type": content_type,
            "User-Agent": "TwilioProxy/1.1",
        }
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def logs(self) -> str:
        self.log.flush()
        text = (self.dir / "gateway.log").read_text("utf-8", "replace")
        return text[-4000:]

    def stop(self) -> None:
        stop(self.process)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(params=list(BASES), ids=list(BASES))
def gateway(request):
    base, sign_forms = BASES[request.param]
    process = Gateway(base)
    process.sign_forms = sign_forms
    process.case_name = request.param
    yield process
    process.stop()


def alter(rng: random.Random, kind: str, base: str, query: str | None, pairs: list[tuple[str, str]], url: str):
    """An altered copy: (query, pairs, signature) of a request that must be refused."""
    pairs = list(pairs)
    signature = sign(TOKEN, url, pairs)
    if kind == "value":
        index = rng.randrange(len(pairs))
        name, value = pairs[index]
        if name == "MessageSid":
            position = rng.randrange(2, len(value))
            flipped = "0" if value[position] != "0" else "1"
            pairs[index] = (name, value[:position] + flipped + value[position + 1:])
        elif name == "MessageStatus":
            pairs[index] = (name, rng.choice([s for s in STATUSES if s != value]))
        else:
            choice = rng.random()
            if choice < 0.4 or not value:
                value = value + rng.choice(["x", " ", "+", "é", "'"])
            elif choice < 0.7:
                position = rng.randrange(len(value))
                value = value[:position] + value[position + 1:]
            else:
                position = rng.randrange(len(value))
                value = value[:position] + ("Z" if value[position] != "Z" else "Y") + value[position + 1:]
            pairs[index] = (name, value)
    elif kind == "add":
        pairs.append((random_name(rng), random_value(rng)))
    elif kind == "remove":
        pairs.pop(rng.randrange(len(pairs)))
    elif kind == "query":
        if query is None:
            query = rng.choice(["x=1", "tenant=acme", "a=%27", "Body=It's+amazing"])
        else:
            choice = rng.random()
            if choice < 0.3:
                query = None
            elif choice < 0.6:
                query = query + rng.choice(["&x=1", "&", "x", "%20", "'"])
            elif query:
                position = rng.randrange(len(query))
                replacement = "q" if query[position] != "q" else "r"
                query = query[:position] + replacement + query[position + 1:]
            else:
                query = "y=2"
    elif kind == "other_url":
        split = urlsplit(base)
        other_scheme = "http" if split.scheme == "https" else "https"
        target = STATUS_PATH + ("" if query is None else "?" + query)
        other = rng.choice([
            f"{other_scheme}://{split.netloc}{target}",
            f"{split.scheme}://other.example.net{target}",
            f"{split.scheme}://{split.hostname}:9999{target}",
            base + "/api/v1/whatsapp/webhook" + ("" if query is None else "?" + query),
            base + STATUS_PATH + "/" + ("" if query is None else "?" + query),
            base + "/API/v1/whatsapp/status" + ("" if query is None else "?" + query),
        ])
        signature = sign(TOKEN, other, pairs)
    elif kind == "token":
        signature = sign(OTHER_TOKEN, url, pairs)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return query, pairs, signature


def test_official_signatures_are_accepted_and_altered_ones_refused(gateway, capsys):
    base = gateway.public_base_url
    rng = random.Random(f"{SEED}:{gateway.case_name}")
    with capsys.disabled():
        print(f"\n[gateway signatures] seed={SEED} PUBLIC_BASE_URL={base} ({CASES_PER_GATEWAY} valid + "
              f"{CASES_PER_GATEWAY} altered; SIGNATURE_TEST_SEED overrides the seed)")
    started = time.monotonic()
    accepted = refused = 0
    for case in range(CASES_PER_GATEWAY):
        where = f"seed={SEED} base={base} case={case}"
        query = random_query(rng)
        pairs = random_params(rng)
        target = STATUS_PATH + ("" if query is None else "?" + query)
        # Twilio signs the URL it calls; it may carry the default port or not.
        sign_base = gateway.sign_forms[case % len(gateway.sign_forms)]
        url = sign_base + target
        signature = sign(TOKEN, url, pairs)
        content_type = rng.choice(["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8"])
        assert official_validate(base, target, pairs, signature), f"{where}: the official validator itself refuses"
        status, text = gateway.post(target, form_body(rng, pairs), signature, content_type)
        assert status == 200, (
            f"{where}: a request signed by RequestValidator was refused ({status} {text!r})\n"
            f"signed URL: {url!r}\nparams: {pairs!r}\nsignature: {signature}\nlogs: {gateway.logs()}"
        )
        accepted += 1

        # The altered copy: a different alteration kind in turn, until one that Twilio's own
        # validator refuses (a few random changes leave the signed string unchanged, e.g. adding
        # a pair that is already there).
        kind = ALTERATIONS[(case + len(gateway.case_name)) % len(ALTERATIONS)]
        for _ in range(50):
            bad_query, bad_pairs, bad_signature = alter(rng, kind, base, query, pairs, url)
            bad_target = STATUS_PATH + ("" if bad_query is None else "?" + bad_query)
            if not official_validate(base, bad_target, bad_pairs, bad_signature):
                break
        else:
            raise AssertionError(f"{where}: no effective {kind} alteration found")
        status, text = gateway.post(bad_target, form_body(rng, bad_pairs), bad_signature, content_type)
        assert status == 403, (
            f"{where}: an altered request ({kind}) was answered {status}, not 403: {text!r}\n"
            f"original URL {url!r} params {pairs!r}\naltered target {bad_target!r} params {bad_pairs!r} "
            f"signature {bad_signature}"
        )
        refused += 1
        assert time.monotonic() - started < TEST_SECONDS, f"{where}: over {TEST_SECONDS}s"
    assert (accepted, refused) == (CASES_PER_GATEWAY, CASES_PER_GATEWAY)
    with capsys.disabled():
        print(f"[gateway signatures] seed={SEED} {base}: {accepted} accepted (200), {refused} refused (403) "
              f"in {time.monotonic() - started:.1f}s")
