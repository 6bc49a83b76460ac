"""``--out`` never destroys what recall-zoo did not write (issue "Nothing lost", item 1).

Each refusal happens before any training: the commands below would train for seconds otherwise, and
the tests check that nothing in the folder changed and no hidden copy was left beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo.errors import UsageError
from zoo.folders import check_bench_folder, check_run_folder
from zoo_cli.main import build_app

SMALL = ["--param", "data.users=120", "--param", "data.items=60", "--param", "data.categories=4",
         "--param", "embed_dim=8", "--param", "dims=16,8", "--epochs", "1", "--device", "cpu", "--quiet"]


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    (folder / "notes").mkdir(parents=True)
    (folder / "log.csv").write_text("user_id,item_id,timestamp\n1,2,3\n")
    (folder / "notes" / "todo.txt").write_text("keep me\n")
    return folder


def test_run_refuses_a_folder_that_is_not_a_run(user_folder):
    before = snapshot(user_folder)
    result = invoke("run", "dssm", *SMALL, "--out", str(user_folder))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert str(user_folder) in line and "'log.csv'" in line and "--force" in line
    assert "train" not in result.stdout
    assert snapshot(user_folder) == before
    assert sorted(p.name for p in user_folder.parent.iterdir()) == ["work"]  # no hidden copy beside it


def test_run_refuses_the_folder_that_holds_its_input_csv(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    rows = ["user_id,item_id,timestamp"] + [f"{u},{(u * 7 + i) % 40 + 1},{i}" for u in range(1, 41) for i in range(8)]
    (folder / "log.csv").write_text("\n".join(rows) + "\n")
    before = snapshot(folder)
    result = invoke("run", "dssm", "--dataset", "csv", "--data", str(folder / "log.csv"), "--out", str(folder),
                    "--epochs", "1", "--device", "cpu", "--quiet")
    assert result.exit_code == 2
    assert "log.csv" in one_line_error(result)
    assert snapshot(folder) == before


def test_run_refuses_an_existing_file(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("precious\n")
    result = invoke("run", "dssm", *SMALL, "--out", str(target))
    assert result.exit_code == 2
    assert "is a file" in one_line_error(result)
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


def test_run_under_a_file_fails_before_training(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = invoke("run", "dssm", *SMALL, "--out", str(blocker / "run"))
    assert result.exit_code == 2
    assert "is a file, not a folder" in one_line_error(result)
    assert blocker.read_text() == "x"


def test_force_writes_the_run_beside_the_users_files(user_folder):
    before = snapshot(user_folder)
    result = invoke("run", "dssm", *SMALL, "--out", str(user_folder), "--force")
    assert result.exit_code == 0, result.stderr
    after = snapshot(user_folder)
    assert {k: after[k] for k in before} == before
    assert (user_folder / "run.json").is_file() and (user_folder / "model" / "weights.safetensors").is_file()
    # a second forced run replaces only the run's own entries
    result = invoke("run", "dssm", *SMALL, "--out", str(user_folder), "--force", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert json.loads((user_folder / "run.json").read_text())["config"]["seed"] == 1
    assert {k: snapshot(user_folder)[k] for k in before} == before
    assert not [p for p in user_folder.iterdir() if p.name.startswith(".")]


def test_a_previous_run_is_replaced_without_force(tmp_path):
    out = tmp_path / "run"
    assert invoke("run", "dssm", *SMALL, "--out", str(out)).exit_code == 0
    result = invoke("run", "dssm", *SMALL, "--out", str(out), "--seed", "3")
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "run.json").read_text())["config"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert check_run_folder(out) is False


@pytest.mark.parametrize(
    "setup",
    [
        lambda f: (f / "run.json").write_text("not json"),  # a run.json recall-zoo did not write
        lambda f: (f / "model").mkdir(),  # our entry's name, but no report: not known to be ours
        lambda f: (f / ".git").mkdir(),  # hidden entries count too
    ],
)
def test_lookalikes_are_not_runs(tmp_path, setup):
    folder = tmp_path / "f"
    folder.mkdir()
    setup(folder)
    with pytest.raises(UsageError, match="recall-zoo did not write"):
        check_run_folder(folder)


def test_a_run_with_extra_user_files_needs_force(tmp_path):
    out = tmp_path / "run"
    assert invoke("run", "dssm", *SMALL, "--out", str(out)).exit_code == 0
    (out / "my-analysis.ipynb").write_text("{}")
    with pytest.raises(UsageError, match="my-analysis.ipynb"):
        check_run_folder(out)
    assert check_run_folder(out, force=True) is True


def test_bench_refuses_a_folder_that_is_not_a_bench(user_folder):
    before = snapshot(user_folder)
    result = invoke("bench", "dssm", "--retriever", "exact", "--out", str(user_folder), "--epochs", "1", "--device", "cpu")
    assert result.exit_code == 2
    assert "not a recall-zoo bench" in one_line_error(result)
    assert snapshot(user_folder) == before


def test_bench_folder_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        check_bench_folder(tmp_path / "file")
    previous = tmp_path / "bench"
    previous.mkdir()
    (previous / "bench.json").write_text("{}")
    check_bench_folder(previous)  # a previous bench resumes
    check_bench_folder(tmp_path / "new")
