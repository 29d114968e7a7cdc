"""Where the Rust binaries under test are: `$GATEWAY_BIN`, or `whatsapp-gateway` in cargo's debug
output directory (`$CARGO_TARGET_DIR`, default `target/` at the repository root)."""

from __future__ import annotations

import os
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
