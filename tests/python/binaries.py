"""Where the Rust binaries under test are (`$GATEWAY_BIN`, or `whatsapp-gateway` in cargo's debug
output directory: `$CARGO_TARGET_DIR`, default `target/` at the repository root), and running
them: a free port, waiting for /healthz, stopping."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def target_dir() -> Path:
    configured = os.environ.get("CARGO_TARGET_DIR")
    if not configured:
        return ROOT / "target"
    path = Path(configured)
    return path if path.is_absolute() else ROOT / path


def gateway_binary() -> Path:
    """The `whatsapp-gateway` binary to run (a relative `$GATEWAY_BIN` is taken from the root)."""
    path = Path(os.environ.get("GATEWAY_BIN", target_dir() / "debug" / "whatsapp-gateway"))
    return path if path.is_absolute() else ROOT / path


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(process, base_url: str, log_path: Path, seconds: float = 30.0) -> None:
    """Waits until the gateway at `base_url` answers /healthz 200; fails with its log if it exits or
    does not answer in time."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited with {process.returncode}: {log_path.read_text('utf-8', 'replace')[-4000:]}")
        try:
            with opener.open(base_url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the gateway did not answer /healthz within {seconds}s: {log_path.read_text('utf-8', 'replace')[-4000:]}")


def stop(process) -> None:
    """Terminates a child process, killing it if it does not exit within 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
