"""The external example plugin ``examples/zoo-mlflow``: a run shows up in the MLflow store.

Needs the example installed (``pip install ./examples/zoo-mlflow``, which pulls mlflow-skinny);
otherwise every test here is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from zoo.pipeline import RunConfig, run
from zoo.plugins import LOADED, PluginManager

pytest_plugins = ["zoo.testing.plugin"]

pytest.importorskip(
    "mlflow", reason="MLflow is not installed (pip install ./examples/zoo-mlflow pulls mlflow-skinny)"
)
zoo_mlflow = pytest.importorskip(
    "zoo_mlflow", reason="the example plugin is not installed: pip install ./examples/zoo-mlflow"
)
from zoo_mlflow.sink import list_runs, store, tracking_uri  # noqa: E402

TINY = {"users": 150, "items": 60, "categories": 6, "mean_length": 12, "seed": 1}
TINY_ARGS = [
    "--epochs",
    "2",
    "--device",
    "cpu",
    "--param",
    "data.users=150",
    "--param",
    "data.items=60",
    "--param",
    "data.mean_length=12",
    "--param",
    "embed_dim=8",
    "--param",
    "dims=16,8",
    "--quiet",
]


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "mlruns"
    monkeypatch.setenv("ZOO_MLFLOW_URI", str(folder))
    monkeypatch.setenv("ZOO_MLFLOW_EXPERIMENT", "zoo-tests")
    return folder


def tiny_run(registry, out: Path | None) -> object:
    config = RunConfig(
        model="dssm",
        retriever="exact",
        device="cpu",
        epochs=2,
        dataset_options=dict(TINY),
        params={"embed_dim": 8, "dims": [16, 8], "batch_size": 256},
        out=str(out) if out else None,
        save=out is not None,
    )
    return run(config, registry=registry)


def test_hook_module_stays_light() -> None:
    code = (
        "import sys, zoo_mlflow; print(sorted(m for m in ('mlflow', 'torch', 'typer') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_run_shows_up_in_the_store(
    register_plugin, zoo_registry, mlflow_store: Path, tmp_path: Path
) -> None:
    with register_plugin(zoo_mlflow, name="mlflow", dist="zoo-mlflow") as record:
        assert sorted(record.hooks) == ["zoo_register_commands", "zoo_run_finished", "zoo_trainer_callbacks"]
        report = tiny_run(zoo_registry, tmp_path / "run")
    assert not report.warnings, report.warnings
    assert mlflow_store.is_dir()
    (logged,) = list_runs()
    assert logged["status"] == "FINISHED"
    assert (logged["model"], logged["retriever"], logged["dataset"]) == ("dssm", "exact", "synthetic")
    assert logged["params"]["model"] == "dssm" and logged["params"]["epochs"] == "2"
    assert logged["params"]["model_params.embed_dim"] == "8"
    metrics = logged["metrics"]
    assert metrics["exact.hitrate_at_10"] == pytest.approx(report.metrics["exact"]["hitrate@10"])
    assert metrics["popularity.ndcg_at_50"] == pytest.approx(report.metrics["popularity"]["ndcg@50"])
    assert metrics["retriever.recall_vs_exact.recall_at_10"] == 1.0
    assert "time.train_s" in metrics
    with store() as client:
        history = client.get_metric_history(logged["run_id"], "epoch.loss")
        assert [m.step for m in history] == [e["epoch"] for e in report.training["history"]]
        # logged live, once per epoch, into the same MLflow run the final report went to
        valid = client.get_metric_history(logged["run_id"], "epoch.valid")
        assert [m.value for m in valid] == pytest.approx([e["valid"] for e in report.training["history"]])
        artifacts = {a.path for a in client.list_artifacts(logged["run_id"])}
        assert {"run.json", "model", "index"} <= artifacts
        assert "weights.safetensors" in {
            Path(a.path).name for a in client.list_artifacts(logged["run_id"], "model")
        }
        tags = client.get_run(logged["run_id"]).data.tags
    assert tags["zoo.run_dir"] == str((tmp_path / "run").resolve())
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # allowed only while the plugin logs


def test_run_without_a_directory_logs_the_report(register_plugin, zoo_registry, mlflow_store: Path) -> None:
    with register_plugin(zoo_mlflow, name="mlflow"):
        tiny_run(zoo_registry, None)
    (logged,) = list_runs()
    with store() as client:
        assert [a.path for a in client.list_artifacts(logged["run_id"])] == ["run.json"]


def test_a_logging_failure_is_one_warning_line(
    register_plugin, zoo_registry, tmp_path: Path, monkeypatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    monkeypatch.setenv("ZOO_MLFLOW_URI", str(blocker / "mlruns"))
    with register_plugin(zoo_mlflow, name="mlflow"):
        report = tiny_run(zoo_registry, None)
    (line,) = report.warnings
    assert line.startswith("warning: plugin mlflow zoo_run_finished raised") and "\n" not in line
    assert report.metrics["exact"]["hitrate@10"] >= 0  # the run itself succeeded


def test_zoo_mlflow_command(register_plugin, zoo_cli, mlflow_store: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-store"
    with register_plugin(zoo_mlflow, name="mlflow"):
        assert "mlflow" in zoo_cli("--help").stdout
        result = zoo_cli(
            "mlflow", "--mlflow-uri", other, "run", "dssm", *TINY_ARGS, "--out", tmp_path / "run"
        )
        assert result.exit_code == 0, result.output
        assert "mlflow: logged run" in result.stderr
        listed = zoo_cli("mlflow", "--mlflow-uri", other, "runs", "--json")
        assert listed.exit_code == 0, listed.output
        (entry,) = json.loads(listed.stdout)
        assert entry["model"] == "dssm"
        relogged = zoo_cli("mlflow", "--mlflow-uri", other, "log", tmp_path / "run")
        assert relogged.exit_code == 0, relogged.output
        assert len(json.loads(zoo_cli("mlflow", "--mlflow-uri", other, "runs", "--json").stdout)) == 2
        missing = zoo_cli("mlflow", "log", tmp_path / "nowhere")
        assert missing.exit_code != 0 and "no run report" in missing.stderr
    assert not mlflow_store.exists()  # --mlflow-uri won over ZOO_MLFLOW_URI


def test_default_store_is_mlruns_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ZOO_MLFLOW_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == (tmp_path / "mlruns").resolve().as_uri()
    assert tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_installed_entry_point() -> None:
    found = [ep for ep in entry_points(group="recall_zoo") if ep.name == "mlflow"]
    if not found:
        pytest.skip("zoo-mlflow is importable but not installed as a distribution")
    assert found[0].value == "zoo_mlflow"
    (record,) = [r for r in PluginManager(env={}).records if r.name == "mlflow"]
    assert (record.status, record.dist) == (LOADED, "zoo-mlflow")
    assert sorted(record.hooks) == ["zoo_register_commands", "zoo_run_finished", "zoo_trainer_callbacks"]
