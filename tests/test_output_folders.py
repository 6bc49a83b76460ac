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

SMALL = [
    "--param",
    "data.users=120",
    "--param",
    "data.items=60",
    "--param",
    "data.categories=4",
    "--param",
    "embed_dim=8",
    "--param",
    "dims=16,8",
    "--epochs",
    "1",
    "--device",
    "cpu",
    "--quiet",
]


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
    rows = ["user_id,item_id,timestamp"] + [
        f"{u},{(u * 7 + i) % 40 + 1},{i}" for u in range(1, 41) for i in range(8)
    ]
    (folder / "log.csv").write_text("\n".join(rows) + "\n")
    before = snapshot(folder)
    result = invoke(
        "run",
        "dssm",
        "--dataset",
        "csv",
        "--data",
        str(folder / "log.csv"),
        "--out",
        str(folder),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--quiet",
    )
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
    result = invoke(
        "bench", "dssm", "--retriever", "exact", "--out", str(user_folder), "--epochs", "1", "--device", "cpu"
    )
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


# -- one writer per folder, crash-safe commits (issue "Nothing lost", item 2) ---------------------------
def test_a_second_writer_of_the_same_folder_stops_at_once(tmp_path):
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "zoo_cli.main",
        "run",
        "dssm",
        *SMALL[:-1],
        "--epochs",
        "3",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lock = tmp_path / ".run.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 2
    assert "another recall-zoo process is writing this folder" in second.stderr
    assert "Traceback" not in second.stderr
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert (out / "run.json").is_file()


CHILD = r"""
import sys
from pathlib import Path
from zoo.folders import writer_lock
from zoo.io import atomic_dir, commit_dir
target = Path(sys.argv[1])
version = 0
with writer_lock(target):
    while True:
        version += 1
        tmp = atomic_dir(target)
        for name in ("a", "b", "c"):
            (tmp / name).write_text(str(version) * 2000)
        commit_dir(tmp, target)
        print(version, flush=True)
"""


def test_a_kill_at_any_point_leaves_the_old_or_the_new_folder(tmp_path):
    """A child commits new versions of one folder in a loop; it is SIGKILLed at random moments. After
    each kill (and the next writer's clean-up) the folder is complete and consistent, and no
    temporary or backup folder is left beside it."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from zoo.folders import writer_lock

    target = tmp_path / "run"
    rng = random.Random(0)
    for _ in range(12):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip()  # at least one commit finished
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        with writer_lock(target):  # the next writer cleans up
            contents = {p.name: p.read_text() for p in target.iterdir()}
        assert sorted(contents) == ["a", "b", "c"]
        assert len(set(contents.values())) == 1, "files of two versions mixed"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_leftovers_are_cleaned_and_a_lone_backup_is_restored(tmp_path):
    from zoo.io import clean_leftovers

    target = tmp_path / "run"
    (tmp_path / ".run.old-4242").mkdir()
    (tmp_path / ".run.old-4242" / "run.json").write_text("{}")
    (tmp_path / ".run.tmp-abc123").mkdir()
    (tmp_path / ".run.other.tmp-abc123").mkdir()  # a tmp of the folder "run.other": not ours to touch
    clean_leftovers(target)
    assert (target / "run.json").read_text() == "{}"  # killed between the two renames: the old run is back
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.other.tmp-abc123", "run"]


def test_run_folders_follow_the_umask(tmp_path):
    """Folders and files of a run get an ordinary mkdir's and open's permissions (0755/0644 under the
    usual umask 022), not the private 0700/0600 of temporary files (issue "Nothing lost", item 7)."""
    import os
    import stat

    previous = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert invoke("run", "dssm", *SMALL, "--out", str(out)).exit_code == 0
    finally:
        os.umask(previous)
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert {path: oct(mode) for path, mode in modes.items() if mode not in (0o755, 0o644)} == {}
    assert modes["."] == 0o755 and modes["run.json"] == 0o644 and modes["model/weights.safetensors"] == 0o644
