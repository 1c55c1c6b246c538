"""``aees train ... --tensorboard DIR --mlflow [URI]``: what the runner writes, read back with
TensorBoard's event accumulator and MLflow's client (a file store under ``tmp_path``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aees import cli
from aees.results import load_run_result
from aees.runner import engine

EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator"
).EventAccumulator
MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MLFLOW_ALLOW_FILE_STORE": "true",
}
RUN = [
    "train", "digits", "--epochs", "1", "--batch-size", "64", "--control-mode", "adaptive",
    "--lr-candidates", "0.5,1,2", "--episode-length", "5", "--quiet",
]  # fmt: skip
# fields that differ between two runs of the same configuration (timing, where-to)
_RUN_SPECIFIC = {"wall_clock_seconds", "epoch_wall_clock_seconds", "provenance", "config"}


@pytest.fixture(autouse=True)
def _setup(monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mlflow_run(uri: str):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("aees-digits")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def history(client: MlflowClient, run, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def comparable(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if k not in _RUN_SPECIFIC and k != "runtime_metrics"}


@pytest.mark.slow
def test_tensorboard_and_mlflow_record_the_run_without_changing_it(tmp_path):
    """Subprocess, bare ``--mlflow`` (the ./mlruns default): config as params, metrics per epoch
    and per episode, the result as an artifact; TensorBoard holds the same numbers; and the
    result equals that of an untracked run."""
    done = subprocess.run(
        [sys.executable, "-m", "aees.cli", *RUN, "--output", "tracked.json",
         "--tensorboard", "tb", "--mlflow"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert cli.main([*RUN, "--output", str(tmp_path / "plain.json")]) == 0
    tracked = load_run_result(tmp_path / "tracked.json")
    assert comparable(tmp_path / "tracked.json") == comparable(tmp_path / "plain.json")
    logs = tracked.episode_logs
    steps = [end + 1 for end in logs["episode_end_steps"]]
    assert len(steps) == 4  # 20 steps, episodes of 5
    uri = (tmp_path / "mlruns").as_uri()
    assert tracked.config["mlflow"] == uri and tracked.config["tensorboard"] == "tb"

    board = scalars(tmp_path / "tb" / "tracked")
    end = tracked.total_steps
    assert board["epoch/val_accuracy"] == [(end, pytest.approx(tracked.val_accuracies[0]))]
    assert board["epoch/train_loss"] == [(end, pytest.approx(tracked.train_losses[0]))]
    assert [s for s, _ in board["episode/reward"]] == steps
    assert [v for _, v in board["episode/reward"]] == pytest.approx(logs["episode_rewards"])
    assert [v for _, v in board["episode/lr_multiplier"]] == logs["selected_lr_values"]
    assert [v for _, v in board["episode/effective_lr"]] == pytest.approx(
        [1e-3 * m for m in logs["selected_lr_values"]]
    )

    client, run = mlflow_run(uri)
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    params = run.data.params
    assert params["control_mode"] == "adaptive" and params["episode_length"] == "5"
    assert json.loads(params["lr_candidates"]) == [0.5, 1.0, 2.0]
    assert run.data.tags["aees.variant"] == tracked.variant
    assert history(client, run, "epoch/val_accuracy") == [
        (tracked.total_steps, pytest.approx(tracked.val_accuracies[0]))
    ]
    assert history(client, run, "episode/lr_arm") == list(
        zip(steps, [float(i) for i in logs["selected_lr_indices"]], strict=True)
    )
    rewards = history(client, run, "episode/reward")
    assert [s for s, _ in rewards] == steps
    assert [r for _, r in rewards] == pytest.approx(logs["episode_rewards"])
    assert run.data.metrics["result/best_val_accuracy"] == pytest.approx(tracked.best_val_accuracy)
    artifact = client.download_artifacts(run.info.run_id, "tracked.json", str(tmp_path / "dl"))
    assert Path(artifact).read_bytes() == (tmp_path / "tracked.json").read_bytes()


def test_resumed_run_continues_the_same_mlflow_run_and_tensorboard_curve(tmp_path, monkeypatch):
    """Killed in epoch 2 (after its episodes were logged, before its checkpoint), then resumed:
    one MLflow run, FINISHED, every episode once; TensorBoard drops the killed segment's points
    past the checkpoint, so each step appears once; both equal the full run's episode log."""
    uri = (tmp_path / "mlruns").as_uri()
    argv = [
        *RUN[:3], "2", *RUN[4:], "--output", str(tmp_path / "r.json"),
        "--checkpoint-dir", str(tmp_path / "ck"), "--tensorboard", str(tmp_path / "tb"),
        "--mlflow", uri,
    ]  # fmt: skip
    calls = {"n": 0}
    evaluate = engine._Runner.evaluate

    def interrupted(self, loader):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return evaluate(self, loader)

    monkeypatch.setattr(engine._Runner, "evaluate", interrupted)
    assert cli.main(argv) == 130
    _, run = mlflow_run(uri)
    assert run.info.status == "KILLED"
    killed_steps = scalars(tmp_path / "tb" / "r")["episode/reward"]
    monkeypatch.setattr(engine._Runner, "evaluate", evaluate)
    assert cli.main([*argv, "--resume"]) == 0

    result = load_run_result(tmp_path / "r.json")
    logs = result.episode_logs
    steps = [end + 1 for end in logs["episode_end_steps"]]
    assert len(killed_steps) > len([s for s in steps if s <= result.total_steps // 2])
    client, run = mlflow_run(uri)
    assert run.info.status == "FINISHED" and run.data.tags["aees.resumed"] == "true"
    assert [s for s, _ in history(client, run, "episode/reward")] == steps
    assert [v for _, v in history(client, run, "epoch/index")] == [1.0, 2.0]
    board = scalars(tmp_path / "tb" / "r")
    assert [s for s, _ in board["episode/reward"]] == steps
    assert [v for _, v in board["episode/reward"]] == pytest.approx(logs["episode_rewards"])
    assert [v for _, v in board["epoch/index"]] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--mlflow", "http://alice:s3cret@mlflow.example:5000"], "--mlflow"),
        (["--mlflow", "ftp://example/mlruns"], "--mlflow"),
        (["--mlflow", " "], "--mlflow"),
        (["--tensorboard", "{file}"], "--tensorboard"),
        (["--mlflow", "{file}/sub"], "--mlflow"),
    ],
)
def test_bad_tracking_flags_one_line_exit_2(tmp_path, capsys, flags, flag):
    (tmp_path / "file").write_text("x")
    flags = [f.replace("{file}", str(tmp_path / "file")) for f in flags]
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exc:
        cli.main([*RUN, "--output", str(out), "--tensorboard", str(tmp_path / "tb"), *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"error: {flag}" in err
    assert "s3cret" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing created


def test_tracking_never_writes_the_hf_token(tmp_path, monkeypatch):
    """An NLP run with ``--hf-token``: no file under the TensorBoard or MLflow directories (nor
    the result) holds the token."""
    from nlp_fixtures import write_sst2, write_tiny_distilbert

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    secret = "hf_abcdefghijklmnopqrstuvwxyz0123"
    model = write_tiny_distilbert(tmp_path / "model")
    data = write_sst2(tmp_path / "sst2", 32, 16)
    argv = [
        "train", "sst2", "--model-name", str(model), "--data-dir", str(data),
        "--cache-dir", str(tmp_path / "hf_cache"), "--tokenized-dataset-dir", str(tmp_path / "tok"),
        "--local-files-only", "--device", "cpu", "--quiet", "--epochs", "1",
        "--method", "AdaptiveScheduler", "--lr-candidates", "0.5,1", "--episode-length", "1",
        "--hf-token", secret, "--run-tag", f"tag-{secret}", "--output", str(tmp_path / "r.json"),
        "--tensorboard", str(tmp_path / "tb"), "--mlflow", str(tmp_path / "mlruns"),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    written = [p for d in ("tb", "mlruns") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert any(p.name.startswith("events.out.tfevents") for p in written)
    assert any(p.name == "r.json" and "artifacts" in p.parts for p in written)
    for path in [*written, tmp_path / "r.json"]:
        assert secret.encode() not in path.read_bytes(), path
        assert secret.encode() not in path.name.encode()


# ------------------------------------------------------------------------ hostile tracking inputs


def train(cwd: Path, *flags: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``aees train digits`` in a subprocess started in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "aees.cli", *RUN, *flags],
        cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def refused(done: subprocess.CompletedProcess[str], flag: str, *secrets: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"error: {flag}" in lines[0], done.stderr
    for secret in secrets:
        assert secret not in done.stderr + done.stdout
    return lines[0]


def _special(kind: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        path.write_text("x")
    else:
        os.mkfifo(path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_tensorboard_run_dir_that_is_not_a_directory_is_refused(tmp_path, kind):
    """``--tensorboard tb`` for ``r.json`` writes ``tb/r``: a file or a FIFO there gave a
    FileExistsError traceback after the data was loaded."""
    _special(kind, tmp_path / "tb" / "r")
    line = refused(train(tmp_path, "--output", "r.json", "--tensorboard", "tb"), "--tensorboard")
    assert "tb/r" in line and "not a directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tb"]
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["r"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("http://[::1", "not a valid URI"),  # a ValueError traceback before
        ("http://", "names no host"),  # four minutes of retries against host "api" before
        ("sqlite://", "names no database file"),  # an in-memory store and ./mlruns before
        ("ftp://alice:s3cret@example/m?token=t0ken-value", "unsupported scheme"),  # echoed both
    ],
)
def test_malformed_mlflow_uri_is_one_line_before_training(tmp_path, uri, says):
    line = refused(
        train(tmp_path, "--output", "r.json", "--mlflow", uri), "--mlflow", "s3cret", "t0ken-value"
    )
    assert says in line
    assert list(tmp_path.iterdir()) == []


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_unreachable_mlflow_server_fails_in_seconds_without_echoing_the_token(tmp_path):
    """A closed port: MLflow's default retries took 252 s before the one-line error (so the
    timeout below failed); the ``?token=`` value was echoed twice in it."""
    env = {k: v for k, v in ENV.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    uri = f"http://127.0.0.1:{_closed_port()}/?token=t0ken-value"
    done = subprocess.run(
        [sys.executable, "-m", "aees.cli", *RUN, "--output", "r.json", "--mlflow", uri],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    line = refused(done, "--mlflow", "t0ken-value")
    assert "127.0.0.1" in line and "token=<redacted>" in line
    assert list(tmp_path.iterdir()) == []  # no result


@pytest.mark.slow
def test_sqlite_store_keeps_artifacts_next_to_the_database(tmp_path):
    """``--mlflow sqlite:///…/track.db`` wrote ``./mlruns`` under the current directory; now the
    artifacts go to ``<database dir>/mlruns`` and the working directory stays empty."""
    work, store, out = tmp_path / "work", tmp_path / "store", tmp_path / "out"
    work.mkdir()
    uri = f"sqlite:///{store / 'track.db'}"
    done = train(work, "--output", str(out / "r.json"), "--mlflow", uri, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in store.iterdir()) == ["mlruns", "track.db"]
    artifacts = list((store / "mlruns").rglob("r.json"))
    assert len(artifacts) == 1 and artifacts[0].read_bytes() == (out / "r.json").read_bytes()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("aees-digits")
    assert experiment.artifact_location == (store / "mlruns" / "aees-digits").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert load_run_result(out / "r.json").config["mlflow"] == uri


@pytest.mark.parametrize(
    ("text", "kept", "hidden"),
    [
        ("--mlflow ftp://alice:pw@host/x", "ftp://alice:<redacted>@host/x", "pw@"),
        ("http://a:p@ss@h/p", "http://a:<redacted>@h/p", "p@ss"),
        (
            "http://h/?token=t0k&ok=1#access_token=t1k",
            "?token=<redacted>&ok=1#access_token=",
            "t0k",
        ),
        (
            "url: /api?sig=s1g&X-Amz-Signature=s2g",
            "sig=<redacted>&X-Amz-Signature=<redacted>",
            "s2g",
        ),
        ("http://h/?token=t0k: refused", "?token=<redacted>: refused", "t0k"),
    ],
)
def test_redact_uris(text, kept, hidden):
    from aees.results.secrets import redact_uris, scrub_secrets

    assert kept in redact_uris(text) and hidden not in redact_uris(text)
    assert hidden not in json.dumps(scrub_secrets({"mlflow": text, "command": [text]}))
