"""The dashboard and the API reference in a real browser: headless Chromium, driven by Selenium.

The real binary runs on the embedded default (SQLite in a temporary directory, the in-process
queue, the built-in Twilio emulator). Real traffic goes through the API: three numbers write in
(so free-form sends to them are allowed), then 15 sends settle as `read`, `delivered` (a number
with read receipts off), `failed` (30003, injected by the emulator) and `undelivered` (63016: a
number that never wrote). Then, in the browser:

1. `/dashboard`: the token is typed into the sign-in form;
2. the totals shown are the API's (`GET /api/v1/whatsapp/delivery-metrics`), number for number
   and rate for rate, and so are the error codes;
3. the hourly chart is drawn: one bar per bucket with messages, each of nonzero size, filled,
   titled with the bucket's total;
4. a message's status history, opened from the recent messages, is the API's
   (`GET /api/v1/whatsapp/delivery-status`);
5. a phone's health, looked up by number, is the API's (`GET .../phones/{phone}/performance`);
6. `/docs`: the reference renders every operation of `/openapi.json` (path and summary).

After every step: no SEVERE entry in the browser's console (script errors, CSP violations, failed
loads), nothing caught by the error collector installed before any page script runs
(`window.onerror`, failed resource loads, unhandled rejections, CSP violations), and no request
to another origin (every `performance` entry is under the gateway's base URL). A screenshot of
each step is saved under `<target dir>/browser/`.

Chromium and its driver are Debian's `chromium` and `chromium-driver` (`.ci/run` installs them;
`CHROMIUM_BIN` and `CHROMEDRIVER_BIN` override the paths). Without them the test fails: CI has
them, so a missing browser is a broken CI, not a reason to skip. Selenium is given the driver's
path and never runs Selenium Manager (which would download drivers).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

# Selenium Manager would look for (and download) a driver; it is never wanted here.
os.environ["SE_OFFLINE"] = "true"
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager

from binaries import free_port, gateway_binary, stop, target_dir, wait_healthy

CHROMIUM = Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
JWT_SECRET = "dashboard-browser-jwt-secret-0123456789"
SETTLE_SECONDS = 30.0
STEP_SECONDS = 15.0

# The traffic: who writes in, and what becomes of the messages sent to each number.
READS = "+14155550101", "+14155550102"  # wrote in: delivered, then read
NO_READ_RECEIPTS = "+14155550103"  # wrote in, read receipts off: stays `delivered`
FAILING = "+14155550177"  # the emulator fails every send to it: `failed`, 30003
SILENT = "+14155550188"  # never wrote: free-form is `undelivered`, 63016
SENDS = {READS[0]: 4, READS[1]: 4, NO_READ_RECEIPTS: 2, FAILING: 3, SILENT: 2}
FINAL = {READS[0]: "read", READS[1]: "read", NO_READ_RECEIPTS: "delivered", FAILING: "failed", SILENT: "undelivered"}

# Installed in every document before its own scripts run (through the DevTools protocol, so the
# page's Content-Security-Policy does not apply to it).
ERROR_COLLECTOR = """
(function () {
  const errors = [];
  Object.defineProperty(window, '__pageErrors', { value: errors });
  window.onerror = function (message, source, line, column) {
    errors.push('error: ' + message + ' at ' + source + ':' + line + ':' + column);
  };
  window.addEventListener('error', function (event) {
    if (event.target && event.target !== window) {
      errors.push('failed to load ' + (event.target.src || event.target.href || event.target.tagName));
    }
  }, true);
  window.addEventListener('unhandledrejection', function (event) {
    errors.push('unhandled rejection: ' + (event.reason && event.reason.stack || event.reason));
  });
  document.addEventListener('securitypolicyviolation', function (event) {
    errors.push('CSP violation: ' + event.violatedDirective + ' blocked ' + event.blockedURI);
  });
})();
"""

# The text of a node and of every shadow root below it (RapiDoc renders into shadow DOM).
DEEP_TEXT = """
function deepText(node) {
  let text = '';
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) text += child.textContent + ' ';
    else if (child.nodeType === Node.ELEMENT_NODE) {
      if (child.shadowRoot) text += deepText(child.shadowRoot);
      if (!['SCRIPT', 'STYLE'].includes(child.tagName)) text += deepText(child);
    }
  }
  return text;
}
return deepText(document.body).replace(/\\s+/g, ' ');
"""

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------- the gateway and its API ----------


class Gateway:
    def __init__(self, base: str, token: str, send_token: str):
        self.base = base
        self.token = token  # read-only: what the dashboard is given
        self.send_token = send_token  # for the traffic the test makes

    def request(self, method: str, path: str, body=None, auth: bool = True):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", "Bearer " + (self.token if method == "GET" else self.send_token))
        try:
            with OPENER.open(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode('utf-8', 'replace')}") from None

    def get(self, path: str):
        return self.request("GET", path)

    def metrics(self):
        return self.get("/api/v1/whatsapp/delivery-metrics?granularity=hour")


def mint(binary: Path, workdir: Path, env: dict, *args: str) -> str:
    return subprocess.run([str(binary), "token", *args], cwd=workdir, env=env, check=True, capture_output=True, text=True).stdout.strip()


def dashboard_token(binary: Path, workdir: Path, env: dict) -> str:
    """The token typed into the dashboard: a read-only one (`messages:read metrics:read`), which is
    all the dashboard needs."""
    return mint(binary, workdir, env, "--sub", "dashboard-browser", "--scope", "messages:read metrics:read")


@pytest.fixture
def gateway():
    binary = gateway_binary()
    assert binary.exists(), f"{binary} is missing: build it with `cargo build -p whatsapp-gateway`"
    workdir = Path(tempfile.mkdtemp(prefix="wg-browser-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DATABASE_URL=f"sqlite://{workdir}/g.db", BIND_ADDR=f"127.0.0.1:{port}", PUBLIC_BASE_URL=base,
               JWT_SECRET=JWT_SECRET, RUST_LOG="warn",
               # SILENT shows what Twilio does with free-form content outside the 24-hour window
               # (undelivered, 63016): the gateway's own check would refuse it before Twilio.
               WHATSAPP_WINDOW_CHECK="false")
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_FILE", "TWILIO_API_BASE_URL", "REDIS_URL",
                 "TRUST_PROXY", "REQUIRE_HTTPS", "TLS_CERT_FILE", "TLS_KEY_FILE", "INBOUND_FORWARD_URL", "AUTO_REPLY_TEXT",
                 "JWT_PUBLIC_KEY_FILE", "JWT_AUDIENCE", "JWT_ISSUER"):
        env.pop(name, None)
    for name in [n for n in env if n.startswith("EMULATOR_")]:
        env.pop(name)
    token = dashboard_token(binary, workdir, env)
    log_path = workdir / "gateway.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([str(binary), "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(process, base, log_path)
        yield Gateway(base, token, mint(binary, workdir, env, "--sub", "browser-test-traffic"))
        assert process.poll() is None, f"the gateway died: {log_path.read_text('utf-8', 'replace')[-4000:]}"
    finally:
        stop(process)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def make_traffic(gw: Gateway) -> dict[str, str]:
    """Sends the messages and waits until each has reached its final status and the metrics count
    them all. Returns each message's id with its number."""
    gw.request("PUT", "/emulator/_emulator/behaviours/" + quote(NO_READ_RECEIPTS), {"read_receipts": False}, auth=False)
    gw.request("PUT", "/emulator/_emulator/behaviours/" + quote(FAILING),
               {"fail": {"status": "failed", "error_code": 30003}, "window_open": True}, auth=False)
    for phone in (*READS, NO_READ_RECEIPTS):
        answer = gw.request("POST", "/emulator/_emulator/inbound", {"From": phone, "Body": "hi", "ProfileName": "Browser test"},
                            auth=False)
        assert answer["status"] == 200, answer
    sent = {}
    for phone, n in SENDS.items():
        for i in range(n):
            message = gw.request("POST", "/api/v1/whatsapp/send",
                                 {"to": "whatsapp:" + phone, "body": f"Order {i} is on its way", "reference": f"browser-{phone[-3:]}-{i}"})
            sent[message["id"]] = phone

    deadline = time.monotonic() + SETTLE_SECONDS
    pending = dict(sent)
    while pending and time.monotonic() < deadline:
        for id_, phone in list(pending.items()):
            if gw.get(f"/api/v1/whatsapp/delivery-status?id={id_}")["status"] == FINAL[phone]:
                del pending[id_]
        time.sleep(0.1)
    statuses = {id_: gw.get(f"/api/v1/whatsapp/delivery-status?id={id_}")["status"] for id_ in pending}
    assert not pending, f"not settled in {SETTLE_SECONDS}s: {statuses}"

    expected = {
        "total": len(sent),
        "read": sum(n for p, n in SENDS.items() if FINAL[p] == "read"),
        "delivered": sum(n for p, n in SENDS.items() if FINAL[p] in ("read", "delivered")),
        "failed": SENDS[FAILING],
        "undelivered": SENDS[SILENT],
    }
    totals = {}
    while time.monotonic() < deadline:
        totals = gw.metrics()["totals"]
        if all(totals[k] == v for k, v in expected.items()):
            break
        time.sleep(0.1)
    assert all(totals[k] == v for k, v in expected.items()), f"metrics {totals}, expected {expected}"
    return sent


# ---------- what the dashboard shows, computed like dashboard.js does ----------


def js_round(x: float) -> int:
    return math.floor(x + 0.5)


def count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else "—"


def percent(value) -> str:
    """`value.toLocaleString('en-US', {maximumFractionDigits: 2}) + ' %'`."""
    if not isinstance(value, (int, float)):
        return "—"
    return f"{value:,.2f}".rstrip("0").rstrip(".") + " %"


def duration(ms) -> str:
    if not isinstance(ms, (int, float)) or not math.isfinite(ms):
        return "—"
    if ms < 1000:
        return f"{js_round(ms)} ms"
    if ms < 60000:
        return f"{ms / 1000:.{2 if ms < 10000 else 1}f} s"
    if ms < 90 * 60000:
        return f"{ms / 60000:.1f} min"
    return f"{ms / 3600000:.1f} h"


def shown_totals(totals: dict) -> dict[str, str]:
    shown = {key: count(totals[key]) for key in ("total", "sent", "delivered", "read", "failed", "undelivered")}
    shown["delivery_rate"] = percent(totals["delivery_rate"]) if totals["total"] > 0 else "—"
    shown["read_rate"] = percent(totals["read_rate"]) if totals["delivered"] > 0 else "—"
    shown["failure_rate"] = percent(totals["failure_rate"]) if totals["total"] > 0 else "—"
    for key in ("average_delivery_time_ms", "p50_delivery_time_ms", "p95_delivery_time_ms"):
        shown[key] = duration(totals[key])
    return shown


# ---------- the browser ----------


@contextlib.contextmanager
def chromium(monkeypatch):
    """Headless Chromium under chromedriver. A missing browser fails the test (inside it, so that it
    counts as failed, not as an error of its set-up)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)"
    assert CHROMEDRIVER.exists(), f"{CHROMEDRIVER} is missing: apt-get install chromium-driver (.ci/run installs it)"

    def no_selenium_manager(*_args, **_kwargs):
        raise AssertionError("Selenium Manager was asked for a driver: it would download one")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
    profile = tempfile.mkdtemp(prefix="wg-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-default-apps", "--no-default-browser-check", "--no-proxy-server", "--lang=en-US",
                     "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(STEP_SECONDS)
        driver.set_script_timeout(STEP_SECONDS)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_COLLECTOR})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition, what: str, seconds: float = STEP_SECONDS):
    """Polls `condition()` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as error:  # a node replaced by a refresh, a script not loaded yet
            last = error
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}; last: {last!r}")


class Steps:
    """Screenshots and the checks made after every step."""

    def __init__(self, driver, base: str):
        self.driver = driver
        self.base = base
        self.dir = target_dir() / "browser"
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("*.png"):
            old.unlink()
        self.n = 0
        self.console = []

    def done(self, name: str) -> None:
        self.n += 1
        path = self.dir / f"{self.n:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        print(f"[browser] {path}")
        entries = self.driver.get_log("browser")
        self.console += entries
        severe = [e for e in entries if e.get("level") == "SEVERE"]
        assert not severe, f"step {name}: console errors: {severe}"
        errors = self.driver.execute_script("return window.__pageErrors === undefined ? null : Array.from(window.__pageErrors)")
        assert errors is not None, f"step {name}: the error collector is not installed"
        assert errors == [], f"step {name}: page errors: {errors}"
        urls = self.driver.execute_script(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => e.name)")
        foreign = [u for u in urls if not u.startswith(self.base + "/")]
        assert urls and not foreign, f"step {name}: requests to another origin: {foreign}"


def text(driver, css: str) -> str:
    """The element's text content (as the page set it, before any CSS text-transform)."""
    return (driver.find_element(By.CSS_SELECTOR, css).get_attribute("textContent") or "").strip()


def test_dashboard_and_docs_in_a_real_browser(gateway, monkeypatch):
    with chromium(monkeypatch) as driver:
        check_dashboard_and_docs(gateway, driver)


def check_dashboard_and_docs(gw: Gateway, driver) -> None:
    sent = make_traffic(gw)
    steps = Steps(driver, gw.base)

    # 1. Sign in: the page asks for a token; it is typed in.
    driver.get(gw.base + "/dashboard")
    form = wait_for(lambda: driver.find_element(By.ID, "login-form").is_displayed() and driver.find_element(By.ID, "token-input"),
                    "the sign-in form")
    form.send_keys(gw.token)
    steps.done("sign-in")
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()

    # 2. The totals are the API's.
    wait_for(lambda: driver.find_element(By.ID, "app").is_displayed() and text(driver, "#updated").startswith("Updated "),
             "the dashboard's first refresh")
    shown = driver.execute_script(
        "const out = {};"
        " for (const c of document.querySelectorAll('#cards .stat')) out[c.dataset.key] = c.querySelector('.value').textContent;"
        " return out;")
    report = gw.metrics()
    assert shown == shown_totals(report["totals"]), f"the dashboard shows {shown}, the API says {report['totals']}"
    assert int(shown["total"]) == len(sent)
    errors = driver.execute_script(
        "return [...document.querySelectorAll('#errors-table tbody tr')].map(r => [r.cells[0].textContent, r.cells[2].textContent]);")
    assert sorted(errors) == sorted([code, count(n)] for code, n in report["totals"]["error_breakdown"].items()), errors
    assert {code for code, _ in errors} == {"30003", "63016"}
    steps.done("totals")

    # 3. The hourly chart is drawn: one filled bar of nonzero size per bucket with messages.
    assert text(driver, "#chart-title") == "Messages per hour"
    assert driver.find_element(By.CSS_SELECTOR, "[data-granularity=hour]").get_attribute("aria-pressed") == "true"
    bars = driver.execute_script("""
      return [...document.querySelectorAll('#chart svg g.bar')].map(g => ({
        title: g.querySelector('title').textContent,
        rects: [...g.querySelectorAll('rect')].map(r => {
          const box = r.getBoundingClientRect();
          return { width: box.width, height: box.height, fill: getComputedStyle(r).fill };
        }),
      }));""")
    buckets = [b for b in report["buckets"] if b["total"] > 0]
    assert buckets and len(bars) == len(buckets), f"{len(bars)} bars for {len(buckets)} buckets: {bars}"
    for bar, bucket in zip(bars, sorted(buckets, key=lambda b: b["start"])):
        assert f": {bucket['total']} messages; read {bucket['read']}, delivered {bucket['delivered']}" in bar["title"], (bar, bucket)
        assert bar["rects"], bar
        for rect in bar["rects"]:
            assert rect["width"] > 0 and rect["height"] > 0, bar
            assert rect["fill"] not in ("none", "rgba(0, 0, 0, 0)", "transparent"), bar
    total_height = sum(r["height"] for bar in bars for r in bar["rects"])
    assert total_height > 20, f"the bars are {total_height}px tall in all"
    driver.execute_script("document.getElementById('chart').scrollIntoView({block: 'center'})")
    steps.done("hourly-chart")

    # 4. A message's history, opened from the recent messages, is the API's.
    listed = driver.execute_script(
        "return [...document.querySelectorAll('#messages-table tbody tr')].map(r => r.getAttribute('aria-label'))")
    assert len(listed) == len(sent) + 3, f"{len(sent)} sent and 3 received, the table lists {listed}"
    label = f"Message to {READS[0]}, read"
    assert driver.execute_script(
        "const row = [...document.querySelectorAll('#messages-table tbody tr')].find(r => r.getAttribute('aria-label') === arguments[0]);"
        " if (!row) return false; row.scrollIntoView({block: 'center'}); row.click(); return true;", label), f"no row {label!r}: {listed}"

    def history():
        facts = driver.execute_script(
            "const out = {}; const dl = document.getElementById('detail-facts');"
            " for (const dt of dl.querySelectorAll('dt')) out[dt.textContent] = dt.nextElementSibling.textContent; return out;")
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#detail-history tbody tr')]"
            ".map(r => [...r.querySelectorAll('.badge')].map(b => b.textContent));")
        attempts = driver.execute_script("return document.querySelectorAll('#detail-attempts tbody tr').length")
        return driver.find_element(By.ID, "detail").is_displayed() and facts.get("Id") and rows and (facts, rows, attempts)

    facts, rows, attempts = wait_for(history, "the message's history")
    assert facts["Id"] in sent and sent[facts["Id"]] == READS[0], facts
    status = gw.get(f"/api/v1/whatsapp/delivery-status?id={facts['Id']}")
    assert facts["Status"] == status["status"] == "read", facts
    assert facts["To"] == status["to"] and facts["Twilio SID"] == status["message_sid"], facts
    expected_rows = [([e["previous_status"]] if e["previous_status"] else []) + [e["status"]] for e in status["history"]]
    assert rows == expected_rows, f"the drawer shows {rows}, the API's history is {status['history']}"
    assert rows[-1][-1] == "read" and any(r[-1] == "delivered" for r in rows), rows
    assert attempts == len(status["send_attempts"]) >= 1
    assert text(driver, "#detail-title") == f"Message to {READS[0]}"
    steps.done("message-history")
    driver.find_element(By.ID, "detail-close").click()
    wait_for(lambda: not driver.find_element(By.ID, "detail").is_displayed(), "the drawer to close")

    # 5. A phone's health, looked up by number, is the API's.
    phone_input = driver.find_element(By.ID, "phone-input")
    phone_input.clear()
    phone_input.send_keys(FAILING)
    driver.find_element(By.CSS_SELECTOR, "#phone-form button[type=submit]").click()
    wait_for(lambda: driver.find_element(By.ID, "phone-result").is_displayed() and text(driver, "#phone-number") == FAILING,
             "the phone's health")
    performance = gw.get(f"/api/v1/whatsapp/phones/{quote(FAILING)}/performance")
    assert text(driver, "#phone-health") == performance["health"] == "failing", performance
    assert "health-failing" in driver.find_element(By.ID, "phone-health").get_attribute("class")
    phone_facts = driver.execute_script(
        "const out = {};"
        " for (const dt of document.querySelectorAll('#phone-facts dt')) out[dt.textContent] = dt.nextElementSibling.textContent;"
        " return out;")
    assert phone_facts["Messages"] == count(performance["total_messages"]) == count(SENDS[FAILING]), phone_facts
    assert phone_facts["Delivered"] == count(performance["delivered"]) and phone_facts["Read"] == count(performance["read"])
    assert phone_facts["Failed"] == count(performance["failed"]), (phone_facts, performance)
    assert phone_facts["Delivery rate"] == percent(performance["delivery_rate"]), (phone_facts, performance)
    codes = driver.execute_script("return [...document.querySelectorAll('#phone-errors tbody tr')].map(r => r.cells[1].textContent)")
    assert codes == [str(e["error_code"]) for e in performance["recent_errors"]] and set(codes) == {"30003"}, (codes, performance)
    driver.execute_script("document.getElementById('phone-result').scrollIntoView({block: 'center'})")
    steps.done("phone-health")

    # 6. The API reference renders every operation, from the gateway alone.
    document = gw.request("GET", "/openapi.json", auth=False)
    operations = [(method.upper(), path, op.get("summary") or "") for path, item in document["paths"].items()
                  for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")]
    assert len(operations) >= 10, operations
    driver.get(gw.base + "/docs")

    def rendered():
        page = driver.execute_script(DEEP_TEXT)
        missing = [(m, p) for m, p, _ in operations if p not in page]
        return not missing and page

    page = wait_for(rendered, "the reference to show every operation's path")
    for method, path, summary in operations:
        shown_summary = summary.strip().split("\n")[0].replace("`", "")[:40]
        assert shown_summary in page, f"{method} {path}: summary {summary!r} not shown"
    assert driver.title == "WhatsApp Gateway · API reference" and document["info"]["title"] in page
    # Each operation is a section of its own; the screenshot shows the send operation.
    assert driver.execute_script(
        "const doc = document.querySelector('rapi-doc'); const section = doc.shadowRoot.getElementById('post-/api/v1/whatsapp/send');"
        " if (!section) return false; doc.scrollToPath('post-/api/v1/whatsapp/send'); return true;"), "no section for POST /send"
    wait_for(lambda: driver.execute_script(
        "const s = document.querySelector('rapi-doc').shadowRoot.getElementById('post-/api/v1/whatsapp/send').getBoundingClientRect();"
        " return s.top >= -1 && s.top < 200;"), "the send operation scrolled into view")
    steps.done("api-reference")
    assert len(list(steps.dir.glob("*.png"))) == 6
