"""Workers are processes: their samples meet in PROMETHEUS_MULTIPROC_DIR and /metrics, whichever
worker answers, adds them up (idp.ops.metrics)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from idp import create_app
from idp.ops import metrics as ops_metrics
from tests.oidc.test_operations_metrics import sample

WORKER = textwrap.dedent("""
    import sys
    from idp.ops.metrics import Metrics

    metrics = Metrics(app=None)
    for _ in range(int(sys.argv[1])):
        metrics.observe_request("/token", "200", 0.002)
    metrics.logins.labels("user", "success", "none").inc()
    metrics.token_requests.labels("refresh_token", "refused", "invalid_grant").inc(int(sys.argv[1]))
    print("written", flush=True)
    if sys.argv[2] == "stay":
        sys.stdin.read()  # alive until the test closes stdin
""")


@pytest.fixture
def multiprocess_dir(tmp_path, monkeypatch):
    path = tmp_path / "metrics"
    path.mkdir()
    monkeypatch.setenv(ops_metrics.MULTIPROC_ENV, str(path))
    yield path
    monkeypatch.delenv(ops_metrics.MULTIPROC_ENV)
    ops_metrics.values.ValueClass = ops_metrics.values.get_value_class()  # in-memory again


def worker(requests: int, stay: bool):
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(requests), "stay" if stay else "exit"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert process.stdout.readline().strip() == "written"
    return process


def test_two_workers_samples_add_up_and_a_dead_worker_counts_no_longer_as_alive(multiprocess_dir, settings, clock):
    finished = worker(3, stay=False)
    finished.wait(timeout=30)
    running = worker(5, stay=True)
    try:
        app = create_app(settings, clock=clock)  # this process is a third worker
        text = app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        running.stdin.close()
        running.wait(timeout=30)
    assert sample(text, "idp_http_request_duration_seconds_count", endpoint="/token", status="200") == 8
    assert sample(text, "idp_http_request_duration_seconds_bucket", endpoint="/token", status="200", le="0.0025") == 8
    assert sample(text, "idp_http_request_duration_seconds_bucket", endpoint="/token", status="200", le="0.001") == 0
    assert sample(text, "idp_logins_total", kind="user", outcome="success") == 2
    assert sample(text, "idp_token_requests_total", grant_type="refresh_token", outcome="refused") == 8
    # Counts of the finished worker stay; its live gauge went with it: the running one and this.
    assert sample(text, "idp_workers") == 2
    assert not list(multiprocess_dir.glob(f"gauge_live*_{finished.pid}.db"))
    assert sample(text, "idp_jobs", state="pending") == 0  # one count from the database, not a sum


def test_each_server_start_gets_a_fresh_directory(tmp_path, monkeypatch):
    # Recorded first, so that monkeypatch puts back the variable's state of before the test
    # (prepare_multiprocess_dir sets it as `idp serve` does, behind monkeypatch's back).
    monkeypatch.setenv(ops_metrics.MULTIPROC_ENV, "unused")
    monkeypatch.delenv(ops_metrics.MULTIPROC_ENV)
    made, created = ops_metrics.prepare_multiprocess_dir()
    try:
        assert created and os.environ[ops_metrics.MULTIPROC_ENV] == made and os.listdir(made) == []
    finally:
        ops_metrics.remove_multiprocess_dir(made)
        del os.environ[ops_metrics.MULTIPROC_ENV]
    assert not os.path.exists(made)
    # The operator's own directory: last start's samples go, the directory stays.
    own = tmp_path / "own"
    own.mkdir()
    (own / "counter_123.db").write_bytes(b"old")
    (own / "keep.txt").write_text("not ours")
    monkeypatch.setenv(ops_metrics.MULTIPROC_ENV, str(own))
    path, created = ops_metrics.prepare_multiprocess_dir()
    assert path == str(own) and not created
    assert sorted(os.listdir(own)) == ["keep.txt"]


def test_the_variable_is_left_as_it_was():
    """After the tests above, apps in this process keep their samples in memory again."""
    assert ops_metrics.MULTIPROC_ENV not in os.environ
