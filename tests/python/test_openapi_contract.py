"""The API keeps its own contract: Schemathesis (4.x) against the gateway's `/openapi.json`.

The real binary runs on the embedded default (SQLite, the in-process queue, the built-in Twilio
emulator with a known auth token). `st run` fuzzes every operation in the document with all
checks, all four phases (examples, coverage, fuzzing, stateful) and a fixed seed, with a valid
bearer token; `schemathesis_hooks.py` signs the requests to the two Twilio webhooks so they are
fuzzed too. The run must end with no failure and no error, and must have covered every operation.

`CONTRACT_FUZZ_SEED` and `CONTRACT_FUZZ_EXAMPLES` override the seed and the cases per operation.
"""

from __future__ import annotations

import re
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from binaries import free_port, gateway_binary, stop, wait_healthy

HERE = Path(__file__).resolve().parent
SEED = int(os.environ.get("CONTRACT_FUZZ_SEED", "20261202"))
EXAMPLES = int(os.environ.get("CONTRACT_FUZZ_EXAMPLES", "100"))
TWILIO_TOKEN = "contract-fuzz-twilio-token-6b1f0e"
JWT_SECRET = "contract-fuzz-jwt-secret-0123456789abcdef"
RUN_SECONDS = 600

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")


def test_schemathesis_finds_no_contract_failure():
    binary = gateway_binary()
    assert binary.exists(), f"{binary} is missing: build it with `cargo build -p whatsapp-gateway`"
    st = Path(sys.executable).parent / "st"
    assert st.exists(), f"{st} is missing: install tests/python/requirements.txt"
    workdir = Path(tempfile.mkdtemp(prefix="wg-contract-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite://{workdir}/g.db",
        BIND_ADDR=f"127.0.0.1:{port}",
        PUBLIC_BASE_URL=base,
        JWT_SECRET=JWT_SECRET,
        EMULATOR_AUTH_TOKEN=TWILIO_TOKEN,
        RUST_LOG="warn",
        # One client sends every case: the limits are tested elsewhere, here they would only
        # turn generated requests into 429s.
        RATE_LIMIT_WEBHOOK_PER_MIN="1000000",
        RATE_LIMIT_API_PER_MIN="1000000",
        RATE_LIMIT_BURST="100000",
        # Generated recipients never wrote: with the 24-hour window check, every valid free-form
        # send would be a 422 (window.rs tests the check).
        WHATSAPP_WINDOW_CHECK="false",
        # Whether an event endpoint may point inside the gateway's network is configuration, as
        # the senders a `from` may name are: the document states the syntax of a URL only.
        EVENTS_ALLOW_PRIVATE_URLS="true",
    )
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_FILE", "TWILIO_API_BASE_URL", "REDIS_URL",
                 "TRUST_PROXY", "REQUIRE_HTTPS", "TLS_CERT_FILE", "TLS_KEY_FILE", "INBOUND_FORWARD_URL"):
        env.pop(name, None)
    token = subprocess.run([str(binary), "token", "--sub", "contract-fuzz"], cwd=workdir, env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    log_path = workdir / "gateway.log"
    log = open(log_path, "wb")
    gateway = subprocess.Popen([str(binary), "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(gateway, base, log_path)
        command = [
            str(st), "run", f"{base}/openapi.json",
            "--checks", "all",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--seed", str(SEED),
            "--max-examples", str(EXAMPLES),
            "--generation-database", "none",
            "--workers", "1",
            "--request-timeout", "10",
            "--no-color",
        ]
        fuzz_env = dict(env, SCHEMATHESIS_HOOKS="schemathesis_hooks", WG_FUZZ_BASE_URL=base,
                        WG_FUZZ_TWILIO_TOKEN=TWILIO_TOKEN, WG_FUZZ_BEARER=token, PYTHONPATH=str(HERE))
        run = subprocess.run(command, cwd=workdir, env=fuzz_env, capture_output=True, text=True, timeout=RUN_SECONDS)
        output = run.stdout + run.stderr
        print(output)
        assert gateway.poll() is None, f"the gateway died during the run: {log_path.read_text('utf-8', 'replace')[-4000:]}"
        assert run.returncode == 0, f"schemathesis (seed {SEED}) found failures (exit {run.returncode}):\n{output[-20000:]}"
        selected = re.search(r"Selected: (\d+)/(\d+)", output)
        tested = re.search(r"Tested: (\d+)", output)
        generated = re.search(r"(\d+) generated, (\d+) passed", output)
        assert selected and tested and generated, f"no summary in the output:\n{output[-4000:]}"
        total = int(selected.group(2))
        assert int(selected.group(1)) == total and int(tested.group(1)) == total, f"not every operation was tested:\n{output[-4000:]}"
        assert generated.group(1) == generated.group(2), output[-4000:]
        print(f"[contract fuzz] seed={SEED}: {total} operations, {generated.group(1)} cases generated, all passed")
    finally:
        stop(gateway)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
