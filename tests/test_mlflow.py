"""MLflow for real: a tracking server over HTTP, and parallel stages sharing one sqlite store."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import BIN, REPO, run_env, stage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, data: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read().decode()
    return json.loads(body) if body.strip().startswith("{") else {"text": body}


def test_stage_logs_to_real_mlflow_server(tmp_path: Path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        cwd=tmp_path, env=run_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while True:
            try:
                if "OK" in _get(f"{base}/health").get("text", ""):
                    break
            except OSError:
                pass
            assert time.time() < deadline, "mlflow server did not become healthy in 90 s"
            assert server.poll() is None, "mlflow server exited"
            time.sleep(0.5)
        env = run_env(tmp_path, MLFLOW_TRACKING_URI=base)
        res = subprocess.run(stage("prepare", "debug=tiny", f"paths.prepared={tmp_path / 'prep'}"),
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        exp = _get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=cnnlab")["experiment"]
        runs = _get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        assert len(runs) == 1
        tags = {t["key"]: t["value"] for t in runs[0]["data"]["tags"]}
        params = {m["key"]: m["value"] for m in runs[0]["data"]["params"]}
        metrics = {m["key"] for m in runs[0]["data"].get("metrics", [])}
        assert tags["stage"] == "prepare" and tags["dataset"] == "digits"
        assert params["n_classes"] == "10" and "n_classes" not in metrics  # a fact, not a metric
        assert runs[0]["info"]["status"] == "FINISHED"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_four_parallel_stages_share_one_sqlite_store(tmp_path: Path):
    env = run_env(tmp_path)  # a fresh store: the first writers also race to create its tables
    procs = [subprocess.Popen(stage("prepare", "debug=tiny", f"paths.prepared={tmp_path / f'p{i}'}", f"seed={i}"),
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
        assert "database is locked" not in out
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("cnnlab")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 4
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" for r in runs)
