"""Start a real ``mlflow server`` on 127.0.0.1 for a test (shared by the MLflow tests)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from conftest import BIN, run_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read().decode()
    return json.loads(body) if body.strip().startswith("{") else {"text": body}


@contextlib.contextmanager
def mlflow_server(tmp: Path, db: Path, artifacts: Path) -> Iterator[str]:
    """``mlflow server`` over ``db`` serving ``artifacts``; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(artifacts)],
        cwd=tmp, env=run_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)  # its own process group: the server and its workers stop together
    try:
        deadline = time.time() + 120
        while True:
            try:
                if "OK" in get(f"{base}/health").get("text", ""):
                    break
            except OSError:
                pass
            assert time.time() < deadline, "mlflow server did not become healthy in 120 s"
            assert server.poll() is None, "mlflow server exited"
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine: do not wait for a graceful stop
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
