"""Nothing crashes (issue "Nothing lost, nothing crashes", items 4 to 7): every bad input named in the
issue gets a one-line error and a non-zero exit, never a traceback; degenerate or repeated data gets a
clear error or a warning naming the cause; install hints survive the terminal's markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo_cli.main import build_app

TINY = ["--param", "data.users=80", "--param", "data.items=40", "--param", "data.categories=4"]
SMALL_MODEL = [
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


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(build_app(), list(args), env=env)


def one_line_error(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["data", "download", "no-such-dataset"], 2, "unknown downloadable dataset 'no-such-dataset'"),
        (["run", "dssm", *TINY, "--param", "embed_dim=abc"], 2, "embed_dim='abc': must be an integer"),
        (["run", "dssm", *TINY, "--param", "dims=abc"], 2, "dims='abc': must be a list of integers"),
        (["run", "gru4rec", *TINY, "--param", "hidden_size=x"], 2, "hidden_size='x': must be an integer"),
        (["run", "dssm", *TINY, "--param", "lr=nan"], 2, "lr=nan: must be a finite number > 0"),
        (["run", "dssm", *TINY, "--param", "lr=inf"], 2, "lr=inf: must be a finite number > 0"),
        (["run", "dssm", *TINY, "--param", "batch_size=0"], 2, "batch_size=0: must be an integer >= 1"),
        (["run", "dssm", *TINY, "--seed", str(2**70)], 2, f"seed={2**70}"),
    ],
    ids=[
        "download-unknown",
        "embed-dim-text",
        "dims-text",
        "hidden-text",
        "lr-nan",
        "lr-inf",
        "batch-0",
        "seed-big",
    ],
)
def test_bad_options_are_one_line(args, code, fragment) -> None:
    result = invoke(*args)
    assert result.exit_code == code, result.stderr
    assert fragment in one_line_error(result)


def test_a_download_that_cannot_connect_is_one_line(tmp_path) -> None:
    result = invoke(
        "data", "download", "movielens-100k", "--dir", str(tmp_path / "d"),
        env={"ZOO_DOWNLOAD_BASE_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert result.exit_code == 6
    assert "127.0.0.1:9" in one_line_error(result)
    assert not (tmp_path / "d" / "ml-100k").exists()


def test_bench_out_under_a_file_fails_before_training(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    result = invoke(
        "bench", "dssm", "-r", "exact", "--out", str(tmp_path / "file" / "b"), *TINY, "--epochs", "1"
    )
    assert result.exit_code == 2
    assert "is a file, not a folder" in one_line_error(result)


@pytest.fixture(scope="module")
def bench_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "b"
    args = ["bench", "dssm", "-r", "exact", "--out", str(out), *TINY, "--param", "embed_dim=8"]
    result = invoke(
        *args, "--epochs", "1", "--device", "cpu", "--repeat", "1", "--latency-queries", "5", "--quiet"
    )
    assert result.exit_code == 0, result.stderr
    return out


@pytest.mark.parametrize(
    ("damage", "refused"),
    [
        (lambda doc: doc.update(cells="not a list"), True),
        (lambda doc: doc.update(config=[]), True),
        (lambda doc: doc.update(cells=[1, 2]), True),
        (lambda doc: [cell.update(at={"10": "x"}) for cell in doc["cells"]], True),
        (lambda doc: doc["summary"].update(dssm=[]), False),  # the summary is computed again
        (lambda doc: [cell.pop("at") for cell in doc["cells"]], False),  # rendered: the cell shows no figures
    ],
)
def test_zoo_report_on_a_damaged_bench_json_is_one_line(
    bench_folder: Path, tmp_path: Path, damage, refused: bool
) -> None:
    doc = json.loads((bench_folder / "bench.json").read_text())
    damage(doc)
    (tmp_path / "bench.json").write_text(json.dumps(doc))
    result = invoke("report", str(tmp_path))
    assert "Traceback" not in result.stdout + result.stderr
    if refused:
        assert result.exit_code == 5, result.stdout + result.stderr
        assert "bench.json" in one_line_error(result)
    else:
        assert result.exit_code == 0, result.stderr


# -- data sanity (item 5) -------------------------------------------------------------------------------
ROWS = [(u, (u * 7 + t) % 30 + 1, 1000 + t) for u in range(1, 41) for t in range(8)]


def write_csv(path: Path, rows, header: str = "user_id,item_id,timestamp") -> Path:
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def run_csv(path: Path, tmp_path: Path, *extra: str):
    out = tmp_path / f"run-{path.stem}"
    return invoke(
        "run", "dssm", "--dataset", "csv", "--data", str(path), *SMALL_MODEL, "--out", str(out), *extra
    )


def test_duplicate_events_are_dropped_with_a_warning(tmp_path: Path) -> None:
    clean = run_csv(write_csv(tmp_path / "clean.csv", ROWS), tmp_path, "--format", "json")
    doubled = run_csv(write_csv(tmp_path / "doubled.csv", ROWS + ROWS[::3]), tmp_path, "--format", "json")
    assert clean.exit_code == 0 and doubled.exit_code == 0, doubled.stderr
    assert f"dropped {len(ROWS[::3])} exact duplicate event(s)" in doubled.stderr
    ran, reference = json.loads(doubled.stdout), json.loads(clean.stdout)
    assert ran["metrics"]["exact"] == reference["metrics"]["exact"]  # not every metric 0.0000
    assert ran["metrics"]["exact"]["hitrate@50"] > 0


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([(u, 5, 1000 + t) for u in range(1, 30) for t in range(5)], "1 item left"),
        ([(1, i, 1000 + i) for i in range(1, 40)], "1 user left"),
    ],
    ids=["one-item", "one-user"],
)
def test_degenerate_logs_name_the_cause(tmp_path: Path, rows, fragment: str) -> None:
    result = run_csv(write_csv(tmp_path / "log.csv", rows), tmp_path)
    assert result.exit_code == 3
    line = one_line_error(result)
    assert fragment in line and "log.csv" in line


@pytest.mark.parametrize("bad", ["inf", "-inf"])
def test_non_finite_timestamps_are_rejected_like_nan(tmp_path: Path, bad: str) -> None:
    rows = [*ROWS[:5], (1, 3, bad), *ROWS[5:]]
    result = run_csv(write_csv(tmp_path / "log.csv", rows), tmp_path)
    assert result.exit_code == 3
    line = one_line_error(result)
    assert "timestamp" in line and "line 7" in line and "finite" in line


def test_iso_timestamps_are_parsed(tmp_path: Path) -> None:
    import datetime as dt

    def iso(seconds: int) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    numeric = run_csv(write_csv(tmp_path / "numeric.csv", ROWS), tmp_path, "--format", "json")
    dated = run_csv(
        write_csv(tmp_path / "dated.csv", [(u, i, iso(t)) for u, i, t in ROWS]), tmp_path, "--format", "json"
    )
    assert dated.exit_code == 0, dated.stderr
    assert json.loads(dated.stdout)["metrics"] == json.loads(numeric.stdout)["metrics"]


def test_a_header_with_spaces_still_names_its_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "spaced.csv", ROWS, header="user_id, item_id, timestamp")
    assert run_csv(path, tmp_path).exit_code == 0


def test_the_missing_column_hint_names_an_option_that_works(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "log.csv", ROWS, header="uid,item_id,timestamp")
    result = run_csv(path, tmp_path)
    assert result.exit_code == 3
    line = one_line_error(result)
    assert "--param data.user_col=" in line and "found are uid, item_id, timestamp" in line
    assert run_csv(path, tmp_path, "--param", "data.user_col=uid").exit_code == 0


def test_fewer_samples_than_a_batch_is_a_warning(tmp_path: Path) -> None:
    result = run_csv(write_csv(tmp_path / "log.csv", ROWS), tmp_path, "--batch-size", "5000")
    assert result.exit_code == 0, result.stderr
    assert "batch_size=5000 exceeds the" in result.stderr


# -- install hints (item 7) ------------------------------------------------------------------------------
UNAVAILABLE = """
from zoo import hookimpl
from zoo.specs import RetrieverSpec


@hookimpl
def zoo_register_retrievers():
    return [RetrieverSpec(name="far-away", factory="nowhere:Index", requires=("no_such_module_xyz",),
                          extra="faraway")]
"""


def test_install_hints_keep_their_extra(tmp_path: Path) -> None:
    plugin = tmp_path / "far.py"
    plugin.write_text(UNAVAILABLE)
    doctor = invoke("--plugin", str(plugin), "doctor")
    assert 'pip install "recall-zoo[faraway]"' in doctor.stdout
    listing = invoke("--plugin", str(plugin), "retrievers", env={"COLUMNS": "400"})
    assert 'pip install "recall-zoo[faraway]"' in listing.stdout
