"""The deploy files in `deploy/` are checked against the gateway they deploy.

- Kubernetes: every manifest validates against the Kubernetes schemas that `kubernetes-validate`
  ships (strict: unknown fields are errors), the kustomization lists every manifest but the
  example Secret, and the objects refer to each other (selectors, ports, probes, Secret keys).
- Prometheus: `promtool check rules` on the alerts and `promtool test rules` on their unit tests,
  which must show every alert firing once and staying silent once.
- Metric names: every series named in the alerts and the Grafana dashboard is in the output of the
  real binary's /metrics after traffic that exercises it (sends accepted, retried, failed and
  dead-lettered, callbacks, an incoming message, refused webhooks, a 429), with the label names
  and values the expressions use; the two series that appear only on rare failures are checked
  against their registration in crates/gateway/src/telemetry/metrics.rs instead.
- Grafana: unique panel ids, a Prometheus datasource variable used by every panel and target, a
  non-empty expression in every target that promtool parses.
- Compose, the Containerfile, the systemd unit: parsed and checked for consistency (services and
  their dependencies and healthchecks, secrets, subcommands and environment variables the gateway
  really has, a non-root user, the binary's path); `systemd-analyze verify` on the unit.
  Neither the compose file nor the image can be run here: there is no container engine.
"""

from __future__ import annotations

import configparser
import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from binaries import free_port, gateway_binary, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yaml"
DASHBOARD = DEPLOY / "grafana" / "whatsapp-gateway.json"
COMPOSE = DEPLOY / "compose.yaml"
CONTAINERFILE = DEPLOY / "Containerfile"
UNIT = DEPLOY / "systemd" / "whatsapp-gateway.service"
METRICS_RS = ROOT / "crates" / "gateway" / "src" / "telemetry" / "metrics.rs"
GATEWAY_SRC = ROOT / "crates" / "gateway" / "src"
# The oldest release the manifests are written for, and the newest the validator ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Series that only appear on rare failures, which a short run cannot cause: checked against their
# registration and their call site in the Rust source instead of the live output.
RARE_SERIES = {
    "gateway_enqueue_failures_total": "metrics::enqueue_failed()",  # the queue (Redis) refused a stored message
    "gateway_writer_isolations_total": "metrics::writer_isolation()",  # a write batch failed and was split
    # a status callback never came, and the poller recovered it (POLL_AFTER_MS after the last news)
    "gateway_poll_recovered_total": "metrics::poll_recovered(",
    # an event endpoint failed every delivery for EVENTS_DISABLE_AFTER_MS (days, by default)
    "gateway_event_endpoints_disabled_total": "metrics::event_endpoint_disabled()",
    # an attempt to deliver an event (the run has no event endpoint)
    "gateway_event_attempts_total": "metrics::event_attempt(",
}
# Label values that only appear on rare events (an attempt whose answer was lost, then found at
# Twilio), checked against the Rust call that sets them.
RARE_LABEL_VALUES = {
    ("gateway_sends_total", "outcome", "reconciled"): 'metrics::send("reconciled")',
    # a message whose time ran out (its validity period, or Twilio's 30036 / 21611 / 30001)
    ("gateway_sends_total", "outcome", "expired"): "metrics::send(MessageStatus::Expired.as_str())",
    # a 5xx answer (a dependency down, a bug); the Rust test api::health_readiness_and_prometheus_answer
    # checks the series; every answer goes through this call, whatever its status
    ("gateway_http_requests_total", "status", "5xx"): "telemetry::metrics::http_request(",
    # an event given up after EVENTS_MAX_AGE_MS (a day, by default)
    ("gateway_event_attempts_total", "result", "failed"): "None => \"failed\"",
}

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")


# --- helpers ---------------------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_objects() -> dict[str, list[dict]]:
    return {p.name: yaml_docs(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}


def by_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for docs in k8s_objects().values() for o in docs if o["kind"] == kind}


KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, labels or durations)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = m.group(0)
        if s[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if token.lower() in KEYWORDS or (m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "$")):
            continue  # a keyword, the unit of a number or duration (5m, 1e3), a template variable
        names.add(token)
    return names


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each `name{matchers}` in an expression: the name and its (label, operator, value) matchers."""
    found = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
        matchers = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2))
        found.append((m.group(1), matchers))
    return found


def literal_values(operator: str, value: str) -> list[str]:
    """The label values a matcher asks for by name (`=` and a plain `a|b` regex); none for others."""
    if operator == "=" and "$" not in value:
        return [value]
    if operator == "=~" and re.fullmatch(r"[A-Za-z0-9_.]+(\|[A-Za-z0-9_.]+)*", value):
        return value.split("|")
    return []


def alert_rules() -> list[dict]:
    return [rule for group in yaml_docs(ALERTS)[0]["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text("utf-8"))


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(all_panels(p.get("panels", [])))
    return out


def dashboard_exprs() -> list[str]:
    exprs = [t.get("expr", "") for p in all_panels(dashboard()["panels"]) for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query
        m = re.fullmatch(r"\s*label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query or "")
        if var["type"] == "query" and m:
            exprs.append(m.group(1))
    return exprs


def all_exprs() -> list[str]:
    return [r["expr"] for r in alert_rules()] + dashboard_exprs()


def declared_series() -> dict[str, tuple[str, set[str]]]:
    """name -> (kind, label names) as registered in telemetry/metrics.rs (`series(name, kind, &[labels], …)`)."""
    text = METRICS_RS.read_text("utf-8")
    out = {}
    for m in re.finditer(r'series\(\s*"([a-z0-9_]+)",\s*"([a-z]+)",\s*&\[([^\]]*)\]', text):
        out[m.group(1)] = (m.group(2), set(re.findall(r'"([a-z0-9_]+)"', m.group(3))))
    assert out, f"no series(...) registrations found in {METRICS_RS}"
    return out


def base_series(name: str, declared: dict) -> str | None:
    """The registered series a name belongs to (a summary's `_sum` / `_count` belong to it)."""
    if name in declared:
        return name
    for suffix in ("_sum", "_count"):
        if name.endswith(suffix) and declared.get(name[: -len(suffix)], ("",))[0] == "histogram":
            return name[: -len(suffix)]
    return None


def rust_sources() -> str:
    return "\n".join(p.read_text("utf-8") for p in GATEWAY_SRC.rglob("*.rs") if "telemetry" not in p.parts)


def gateway_env_vars() -> set[str]:
    """Every environment variable the gateway (and its built-in emulator) reads."""
    files = [GATEWAY_SRC / "config" / "load.rs", GATEWAY_SRC / "cli.rs", GATEWAY_SRC / "embedded_emulator.rs",
             ROOT / "crates" / "twilio-emulator" / "src" / "config.rs"]
    names = set()
    for f in files:
        names |= set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', f.read_text("utf-8")))
    # tracing's EnvFilter::try_from_default_env() (telemetry/mod.rs) reads RUST_LOG.
    assert "try_from_default_env" in (GATEWAY_SRC / "telemetry" / "mod.rs").read_text("utf-8")
    names.add("RUST_LOG")
    assert {"DATABASE_URL", "JWT_SECRET_FILE", "TWILIO_AUTH_TOKEN_FILE", "BIND_ADDR"} <= names, names
    return names


def cli_subcommands() -> set[str]:
    text = (GATEWAY_SRC / "cli.rs").read_text("utf-8")
    body = text[text.index("pub enum Command"):]
    body = body[: body.index("\n}\n")]
    return {re.sub(r"(?<!^)([A-Z])", r"-\1", v).lower() for v in re.findall(r"^    ([A-Z][A-Za-z]*)\b", body, re.M)}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get install prometheus (.ci/run installs it)"
    return path


# --- the PromQL helpers themselves ---------------------------------------------------------------


def test_the_metric_name_extractor_sees_names_and_nothing_else():
    expr = ('sum by (outcome) (rate(gateway_sends_total{job=~"$job",outcome=~"failed|x"}[$__rate_interval])) / '
            'ignoring(a) sum(rate(http_requests_total{code=~"5.."}[5m] offset 1h)) > 1e3 and up unless '
            'histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))')
    assert metric_names(expr) == {"gateway_sends_total", "http_requests_total", "up", "x_bucket"}
    assert selectors('a{b="c",d=~"e|f",g!="h"}') == [("a", [("b", "=", "c"), ("d", "=~", "e|f"), ("g", "!=", "h")])]
    assert literal_values("=~", "failed|dead_lettered") == ["failed", "dead_lettered"]
    assert literal_values("=~", ".*") == [] and literal_values("=", "$job") == []


def test_every_metric_and_label_used_is_registered_by_the_gateway():
    declared = declared_series()
    exprs = all_exprs()
    assert len(exprs) >= 20, exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            assert base_series(name, declared), f"{name} (in {expr!r}) is not a series of the gateway ({sorted(declared)})"
        for name, matchers in selectors(expr):
            base = base_series(name, declared)
            kind, labels = declared[base]
            allowed = labels | TARGET_LABELS | ({"quantile"} if kind == "histogram" and name == base else set())
            for label, _, _ in matchers:
                assert label in allowed, f"{name} has no label {label!r} (in {expr!r}; it has {sorted(allowed)})"
    for name, call in RARE_SERIES.items():
        assert name in declared, name
        assert call in rust_sources(), f"{call} is no longer called: {name} may never appear"
    for (_, _, _), call in RARE_LABEL_VALUES.items():
        assert call in rust_sources(), f"{call} is no longer called"


# --- the metric names against the real binary ------------------------------------------------------


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def parse_exposition(text: str) -> dict[str, dict[str, set[str]]]:
    """name -> label -> values, from the Prometheus text format."""
    series: dict[str, dict[str, set[str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+", line)
        assert m, f"unreadable /metrics line: {line!r}"
        labels = series.setdefault(m.group(1), {})
        for label, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(label, set()).add(value)
    return series


def missing_from(live: dict[str, dict[str, set[str]]]) -> list[str]:
    """What the alerts and the dashboard use that the live output lacks."""
    missing = []
    for expr in all_exprs():
        for name in metric_names(expr):
            if name not in live and name not in RARE_SERIES:
                missing.append(f"series {name}")
        for name, matchers in selectors(expr):
            if name in RARE_SERIES:
                continue
            for label, operator, value in matchers:
                if label in TARGET_LABELS:
                    continue
                if label not in live.get(name, {}):
                    missing.append(f"label {name}{{{label}}}")
                    continue
                for v in literal_values(operator, value):
                    if v not in live[name][label] and (name, label, v) not in RARE_LABEL_VALUES:
                        missing.append(f'{name}{{{label}="{v}"}}')
    return sorted(set(missing))


def test_every_series_used_is_in_the_real_gateways_metrics():
    binary = gateway_binary()
    assert binary.exists(), f"{binary} is missing: build it with `cargo build -p whatsapp-gateway`"
    workdir = Path(tempfile.mkdtemp(prefix="wg-deploy-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite://{workdir}/g.db",
        BIND_ADDR=f"127.0.0.1:{port}",
        PUBLIC_BASE_URL=base,
        JWT_SECRET="deploy-test-jwt-secret-0123456789",
        EMULATOR_AUTH_TOKEN="deploy-test-twilio-token-1",
        RUST_LOG="warn",
        # Two attempts, quickly: a recipient answered 503 is retried once, then dead-lettered.
        MAX_ATTEMPTS="2",
        RETRY_BASE_MS="50",
        RETRY_MAX_MS="200",
        WORKER_POLL_MS="100",
        # Refused webhooks from one IP: a few, then 429 (validly signed ones are never limited).
        RATE_LIMIT_WEBHOOK_PER_MIN="1",
        RATE_LIMIT_API_PER_MIN="1000000",
        # Two of the recipients never wrote; what Twilio answers them is what this test is after.
        WHATSAPP_WINDOW_CHECK="false",
    )
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_FILE", "TWILIO_API_BASE_URL", "REDIS_URL",
                 "TRUST_PROXY", "REQUIRE_HTTPS", "TLS_CERT_FILE", "TLS_KEY_FILE", "INBOUND_FORWARD_URL", "JWT_PUBLIC_KEY_FILE"):
        env.pop(name, None)
    token = subprocess.run([str(binary), "token", "--sub", "deploy-test"], cwd=workdir, env=env, check=True,
                           capture_output=True, text=True, timeout=20).stdout.strip()
    auth = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    log_path = workdir / "gateway.log"
    log = open(log_path, "wb")
    gateway = subprocess.Popen([str(binary), "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(gateway, base, log_path)
        emulator = f"{base}/emulator/_emulator"
        # An incoming message (the emulator posts a signed webhook), which also opens the window.
        status, body = http("POST", f"{emulator}/inbound", json.dumps({"From": "+14155550123", "Body": "hi"}).encode(),
                            {"content-type": "application/json"})
        assert status == 200, body
        # Twilio refuses one recipient for good (failed) and keeps answering 503 for another
        # (retrying, then dead-lettered: throttling alone would never dead-letter it).
        for recipient, behaviour in (("+14155550124", {"rest_error": {"status": 400, "code": 21211}}),
                                     ("+14155550125", {"rest_error": {"status": 503, "code": 20503}})):
            status, body = http("PUT", f"{emulator}/behaviours/{recipient}", json.dumps(behaviour).encode(),
                                {"content-type": "application/json"})
            assert status == 200, body
        for recipient in ("+14155550123", "+14155550124", "+14155550125"):
            status, body = http("POST", f"{base}/api/v1/whatsapp/send",
                                json.dumps({"to": f"whatsapp:{recipient}", "body": "deploy test"}).encode(), auth)
            assert status == 202, body
        # Webhooks with a bad and with no signature: 403s, then 429s.
        form = {"content-type": "application/x-www-form-urlencoded"}
        codes = [http("POST", f"{base}/api/v1/whatsapp/status", b"MessageSid=SM0&MessageStatus=sent",
                      dict(form, **({"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"} if i < 3 else {})))[0]
                 for i in range(12)]
        assert 403 in codes and 429 in codes, codes

        deadline = time.monotonic() + 20
        while True:
            status, text = http("GET", f"{base}/metrics")
            assert status == 200
            live = parse_exposition(text.decode())
            missing = missing_from(live)
            if not missing or time.monotonic() > deadline:
                break
            assert gateway.poll() is None, log_path.read_text("utf-8", "replace")[-4000:]
            time.sleep(0.25)
        assert not missing, f"used by deploy/ but not in the gateway's /metrics: {missing}\n\n{text.decode()}"
        # And the live output holds only registered series (the rare ones are registered too).
        declared = declared_series()
        for name in live:
            if name.startswith("gateway_"):
                assert base_series(name, declared), name
    finally:
        stop(gateway)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


# --- Prometheus --------------------------------------------------------------------------------------


def test_promtool_checks_the_rules():
    run = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in run.stdout, run.stdout


def test_promtool_unit_tests_pass():
    run = subprocess.run([promtool(), "test", "rules", ALERT_TESTS.name], cwd=ALERT_TESTS.parent, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def test_every_alert_is_shown_firing_and_silent():
    tests = yaml_docs(ALERT_TESTS)[0]
    assert tests["rule_files"] == [ALERTS.name]
    firing, silent = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names)), names
    for name in names:
        assert name in firing, f"no test shows {name} firing"
        assert name in silent, f"no test shows {name} silent on healthy series"
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule
        # A runbook names a heading of a file in this repository.
        runbook = rule["annotations"].get("runbook")
        if runbook:
            path, _, anchor = runbook.partition("#")
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text("utf-8"), re.M)
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{rule['alert']}: no heading #{anchor} in {path} ({sorted(slugs)})"


def test_a_broken_threshold_fails_the_unit_tests(tmp_path):
    """The unit tests bite: with the failure-ratio threshold doubled, they fail."""
    broken = ALERTS.read_text("utf-8").replace(") > 0.10\n", ") > 0.20\n")
    assert broken != ALERTS.read_text("utf-8")
    (tmp_path / ALERTS.name).write_text(broken)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    run = subprocess.run([promtool(), "test", "rules", ALERT_TESTS.name], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode != 0 and "WhatsAppGatewaySendFailureRatioHigh" in run.stdout + run.stderr, run.stdout


# --- Grafana -------------------------------------------------------------------------------------------


def test_dashboard_is_consistent(tmp_path):
    d = dashboard()
    panels = all_panels(d["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", ds
    uid = "${datasource}"
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 12
    titles = " ".join(p["title"].lower() for p in graphs)
    for topic in ("outcome", "callbacks", "queue", "oldest due", "twilio", "batch size", "batch latency", "webhooks rejected", "429"):
        assert topic in titles, f"no panel about {topic}"
    rules = []
    for p in graphs:
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        assert p.get("targets"), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid, p["title"]
            assert t.get("expr", "").strip(), f"empty expression in {p['title']}"
            # promtool parses each expression (Grafana's variables replaced by what they expand to).
            expr = t["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$job", ".*")
            rules.append({"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": expr})
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == uid, v
    (tmp_path / "dashboard_rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run([promtool(), "check", "rules", str(tmp_path / "dashboard_rules.yaml")], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr


# --- Kubernetes -------------------------------------------------------------------------------------


def test_every_manifest_validates_against_the_kubernetes_schemas():
    import kubernetes_validate

    objects = k8s_objects()
    kinds = {o["kind"] for docs in objects.values() for o in docs}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Job"} <= kinds, kinds
    for name, docs in objects.items():
        assert docs, f"{name} is empty"
        for obj in docs:
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)
    # The validator bites: a misspelt field and a wrong type are refused.
    deployment = copy.deepcopy(by_kind("Deployment")["whatsapp-gateway-api"])
    deployment["spec"]["revisionHistory"] = deployment["spec"].pop("revisionHistoryLimit")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    hpa = copy.deepcopy(by_kind("HorizontalPodAutoscaler")["whatsapp-gateway-api"])
    hpa["spec"]["maxReplicas"] = "ten"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, K8S_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret():
    kustomization = yaml_docs(K8S / "kustomization.yaml")[0]
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(listed) == on_disk
    secret = yaml_docs(K8S / "secret.example.yaml")[0]
    assert "EXAMPLE" in (K8S / "secret.example.yaml").read_text("utf-8")
    assert all("CHANGE-ME" in v or v.startswith("AC000") for v in secret["stringData"].values()), secret["stringData"]
    images = {i["name"] for i in kustomization.get("images", [])}
    for docs in k8s_objects().values():
        for obj in docs:
            for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                assert c["image"].rsplit(":", 1)[0] in images, c["image"]


def test_workloads_are_locked_down_probed_and_wired_to_config_and_secret():
    deployments = by_kind("Deployment")
    assert set(deployments) == {"whatsapp-gateway-api", "whatsapp-gateway-worker"}
    configmap = by_kind("ConfigMap")["whatsapp-gateway"]
    secret = by_kind("Secret")["whatsapp-gateway"]
    env_vars = gateway_env_vars()
    for key in configmap["data"]:
        assert key in env_vars, f"the ConfigMap sets {key}, which the gateway does not read"
    assert configmap["data"]["BIND_ADDR"].startswith("0.0.0.0:"), "in a pod the gateway must not bind loopback"
    port = int(configmap["data"]["BIND_ADDR"].rsplit(":", 1)[1])
    subcommands = cli_subcommands()
    assert {"serve", "worker", "migrate"} <= subcommands, subcommands
    workloads = list(deployments.items()) + list(by_kind("Job").items())
    for name, obj in workloads:
        pod = obj["spec"]["template"]["spec"]
        labels = obj["spec"]["template"]["metadata"]["labels"]
        if obj["kind"] == "Deployment":
            assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        (container,) = pod["containers"]
        assert container["args"][0] in subcommands, container["args"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"], name
        assert container["envFrom"] == [{"configMapRef": {"name": "whatsapp-gateway"}}], name
        for env in container.get("env", []):
            assert env["name"] in env_vars, f"{name} sets {env['name']}, which the gateway does not read"
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "whatsapp-gateway", ref
            assert ref["key"] in secret["stringData"] or ref.get("optional") is True, ref
        if obj["kind"] == "Job":
            assert container["args"] == ["migrate"] and pod["restartPolicy"] == "Never"
            continue
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": port}, ports
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)
        secret_keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]}
        assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"} <= secret_keys, name
    # The gateway drains HTTP requests (each bounded at 30 s), then sends (up to 30 s more).
    mod_rs = (GATEWAY_SRC / "http" / "mod.rs").read_text("utf-8")
    startup_rs = (GATEWAY_SRC / "startup.rs").read_text("utf-8")
    assert "REQUEST_DEADLINE: Duration = Duration::from_secs(30)" in mod_rs
    assert "tokio::time::timeout(Duration::from_secs(30), drain)" in startup_rs
    api = deployments["whatsapp-gateway-api"]["spec"]["template"]["spec"]
    worker = deployments["whatsapp-gateway-worker"]["spec"]["template"]["spec"]
    assert api["containers"][0]["args"] == ["serve"] and worker["containers"][0]["args"] == ["worker"]
    pre_stop = int(api["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert api["terminationGracePeriodSeconds"] >= pre_stop + 30 + 30
    assert worker["terminationGracePeriodSeconds"] > 30
    # `worker` serves /healthz and /readyz itself (the ops router), which its probes rely on.
    assert "http::ops_router(state)" in startup_rs and "health on /healthz, /readyz" in (GATEWAY_SRC / "cli.rs").read_text("utf-8")


def test_service_hpa_and_pdb_point_at_the_deployments():
    deployments = by_kind("Deployment")
    service = by_kind("Service")["whatsapp-gateway"]
    api_labels = deployments["whatsapp-gateway-api"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= api_labels.items()
    worker_labels = deployments["whatsapp-gateway-worker"]["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= worker_labels.items(), "the Service must not route to workers"
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    hpas = by_kind("HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == set(deployments)
    for h in hpas.values():
        assert h["apiVersion"] == "autoscaling/v2"
        assert "cpu" in {m["resource"]["name"] for m in h["spec"]["metrics"]}
        assert h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]
    pdbs = by_kind("PodDisruptionBudget")
    assert len(pdbs) == 2
    for pdb in pdbs.values():
        assert pdb["apiVersion"] == "policy/v1"
        matched = [n for n, d in deployments.items()
                   if pdb["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, (pdb["metadata"]["name"], matched)


# --- compose -------------------------------------------------------------------------------------------


def test_compose_services_depend_on_each_other_consistently():
    compose = yaml_docs(COMPOSE)[0]
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "gateway", "worker"} <= set(services)
    env_vars = gateway_env_vars()
    subcommands = cli_subcommands()
    declared_secrets = set(compose.get("secrets", {}))
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert not services[dep].get("profiles"), f"{name} depends on {dep}, which only runs in a profile"
            condition = spec["condition"]
            if condition == "service_healthy":
                check = services[dep].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{name} waits for {dep} healthy, which has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is a one-shot: it must not restart"
            else:
                pytest.fail(f"{name}: unexpected condition {condition}")
        for secret in service.get("secrets", []):
            assert secret in declared_secrets, f"{name} mounts undeclared secret {secret}"
        if service.get("build") or "gateway" in str(service.get("image", "")):
            command = service["command"]
            assert command[0] in subcommands, (name, command)
            for key, value in service.get("environment", {}).items():
                assert key in env_vars, f"{name} sets {key}, which the gateway does not read"
                if key.endswith("_FILE"):
                    secret = value.removeprefix("/run/secrets/")
                    assert value.startswith("/run/secrets/") and secret in service["secrets"], (name, key, value)
                    assert key.removesuffix("_FILE") not in service["environment"], f"{name} sets both {key} and its value"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["gateway"]["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    for name in ("gateway", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        env = services[name]["environment"]
        # Secrets come from files, never inline.
        for secret in ("DATABASE_URL", "JWT_SECRET", "TWILIO_AUTH_TOKEN"):
            assert secret not in env and f"{secret}_FILE" in env, (name, secret)
        assert env["BIND_ADDR"].startswith("0.0.0.0:")
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for secret, spec in compose["secrets"].items():
        assert spec["file"].startswith("./secrets/"), spec
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text("utf-8")


# --- the container image ------------------------------------------------------------------------------


def containerfile_stages() -> list[dict]:
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text("utf-8"))
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append({"from": m.group(1), "name": m.group(2), "lines": []})
        elif stages:
            stages[-1]["lines"].append((instruction, rest.strip()))
    return stages


def test_containerfile_builds_the_gateway_and_runs_it_unprivileged():
    stages = containerfile_stages()
    assert len(stages) >= 2, "a multi-stage build"
    builder, runtime = stages[0], stages[-1]
    assert "rust:" in builder["from"] and builder["name"]
    cargo_toml = (ROOT / "crates" / "gateway" / "Cargo.toml").read_text("utf-8")
    package = re.search(r'^\[package\]\s*\nname = "([^"]+)"', cargo_toml, re.M).group(1)
    binary = re.search(r'\[\[bin\]\]\s*\nname = "([^"]+)"', cargo_toml).group(1)
    runs = " ".join(rest for instr, rest in builder["lines"] if instr == "RUN")
    assert re.search(rf"cargo build --release -p {re.escape(package)} --locked", runs), runs
    built = f"target/release/{binary}"
    out = re.search(rf"{re.escape(built)}\s+(\S+)", runs)
    assert out, f"the builder does not copy {built} out"
    copies = [rest for instr, rest in runtime["lines"] if instr == "COPY"]
    assert len(copies) == 1, f"the runtime stage copies only the binary: {copies}"
    m = re.fullmatch(rf"--from={re.escape(builder['name'])}\s+(\S+)\s+(\S+)", copies[0])
    assert m and m.group(1) == out.group(1), (copies, out.group(1))
    installed = m.group(2)
    users = [rest for instr, rest in runtime["lines"] if instr == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root UID: {users[-1]}"
    entrypoint = json.loads(next(rest for instr, rest in runtime["lines"] if instr == "ENTRYPOINT"))
    assert entrypoint == [installed], (entrypoint, installed)
    cmd = json.loads(next(rest for instr, rest in runtime["lines"] if instr == "CMD"))
    assert cmd == ["serve"] and "serve" in cli_subcommands()
    expose = [rest for instr, rest in runtime["lines"] if instr == "EXPOSE"]
    env = " ".join(rest for instr, rest in runtime["lines"] if instr == "ENV")
    assert expose == ["8080"] and "BIND_ADDR=0.0.0.0:8080" in env, (expose, env)
    apt = " ".join(rest for instr, rest in runtime["lines"] if instr == "RUN")
    assert "ca-certificates" in apt and "--no-install-recommends" in apt
    dockerignore = (ROOT / ".dockerignore").read_text("utf-8").split()
    assert {"target/", ".venv/", "data/"} <= set(dockerignore), dockerignore
    for needed in ("crates", "Cargo.toml", "Cargo.lock"):
        assert not any(p.strip("/") == needed for p in dockerignore), needed


# --- systemd --------------------------------------------------------------------------------------------


def test_systemd_unit_is_hardened_and_verifies(tmp_path):
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read_string(UNIT.read_text("utf-8"))
    service = parser["Service"]
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/whatsapp-gateway") and exec_start[1] in cli_subcommands(), exec_start
    assert service.get("DynamicUser") == "yes" or service.get("User"), "runs as an unprivileged user"
    expected = {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "Restart": "on-failure", "StateDirectory": "whatsapp-gateway",
                "WorkingDirectory": "/var/lib/whatsapp-gateway", "PrivateTmp": "yes", "ProtectHome": "yes"}
    for key, value in expected.items():
        assert service.get(key) == value, (key, service.get(key))
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/whatsapp-gateway/")
    assert int(service["TimeoutStopSec"].rstrip("s")) >= 60, "the gateway may take 30 s + 30 s to stop"
    assert "multi-user.target" in parser["Install"]["WantedBy"]
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed: the unit was parsed but not verified")
    # `verify` checks that ExecStart exists: point it at an executable that does.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text("utf-8").replace(exec_start[0], shutil.which("true")))
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and not run.stderr.strip() and not run.stdout.strip(), run.stdout + run.stderr
    run = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)], capture_output=True, text=True, timeout=30)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", run.stdout)
    assert m, run.stdout + run.stderr
    assert float(m.group(1)) <= 2.0, f"exposure {m.group(1)}:\n{run.stdout}"
    # A misspelt directive is reported (the check bites).
    unit.write_text(unit.read_text("utf-8").replace("ProtectSystem=strict", "ProtectSystm=strict"))
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert "ProtectSystm" in run.stderr, run.stderr
