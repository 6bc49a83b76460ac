"""Property-based fuzzing of everything that reads user input (issue "Nothing lost, nothing crashes",
item 8): CSV and Parquet logs, ``--param`` strings, trainer settings, and the JSON headers of saved
models, indexes and benches. The property: a clean ZooError (a one-line message) or a valid result,
never another exception."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.errors import ZooError

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

CELLS = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", " ", "nan", "inf", "-inf", "NULL", "1e309", "2003-07-31T12:00:00Z", "2003-13-45", '"', "a,b"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
)
HEADERS = st.sampled_from(
    [
        "user_id,item_id,timestamp",
        "user_id,item_id,timestamp,rating",
        "user_id, item_id ,timestamp",
        "uid,item_id,timestamp",
        "user_id,item_id",
        "user_id;item_id;timestamp",
        "",
    ]
)


def assert_clean(exc: BaseException) -> None:
    assert isinstance(exc, ZooError), f"{type(exc).__name__}: {exc}"
    assert "\n" not in exc.message and exc.message.strip()


@FUZZ
@given(header=HEADERS, rows=st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=12))
def test_csv_logs_read_cleanly_or_fail_in_one_line(tmp_path_factory, header: str, rows) -> None:
    from zoo.data.readers import read_interactions

    path = tmp_path_factory.mktemp("csv") / "log.csv"
    path.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n", encoding="utf-8")
    try:
        log = read_interactions(path, rating_col="rating" if "rating" in header else None)
    except Exception as exc:  # noqa: BLE001 - the property under test
        assert_clean(exc)
        return
    events = log.events
    assert list(events.columns[:3]) == ["user_id", "item_id", "timestamp"]
    assert np.isfinite(events["timestamp"].to_numpy(dtype="float64")).all()
    assert not events.duplicated().any()


@FUZZ
@given(
    users=st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none()), min_size=1, max_size=8),
    stamps=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**62), 2**62), st.none()),
        min_size=1,
        max_size=8,
    ),
)
def test_parquet_logs_read_cleanly_or_fail_in_one_line(tmp_path_factory, users, stamps) -> None:
    pytest.importorskip("pyarrow")
    from zoo.data.readers import read_interactions

    n = min(len(users), len(stamps))
    frame = pd.DataFrame({"user_id": users[:n], "item_id": list(range(n)), "timestamp": stamps[:n]})
    path = tmp_path_factory.mktemp("pq") / "log.parquet"
    try:
        frame.to_parquet(path)
    except Exception:  # noqa: BLE001 - pyarrow cannot store this mix of types: nothing to read
        return
    try:
        read_interactions(path)
    except Exception as exc:  # noqa: BLE001
        assert_clean(exc)


@FUZZ
@given(items=st.lists(st.text(max_size=20), max_size=6))
def test_param_strings_parse_or_fail_in_one_line(items) -> None:
    from zoo_cli.params import parse_ks, parse_params

    try:
        parsed = parse_params(items)
    except Exception as exc:  # noqa: BLE001
        assert_clean(exc)
    else:
        assert sum(len(bucket) for bucket in parsed) <= len(items)
    try:
        parse_ks(",".join(items))
    except Exception as exc:  # noqa: BLE001
        assert_clean(exc)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
)


@FUZZ
@given(
    values=st.dictionaries(
        st.sampled_from(
            [
                "lr",
                "epochs",
                "mode",
                "negatives",
                "seed",
                "patience",
                "valid_metric",
                "ema_decay",
                "grad_clip_norm",
                "batch_size",
                "lr_schedule",
                "time_limit",
                "epoch",
            ]
        ),
        VALUES,
        max_size=5,
    )
)
def test_trainer_settings_validate_or_fail_in_one_line(values) -> None:
    from zoo.train.config import TrainerConfig

    try:
        config = TrainerConfig.from_dict(values)
    except Exception as exc:  # noqa: BLE001
        assert_clean(exc)
    else:
        assert TrainerConfig.from_dict(config.to_dict()) == config


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from zoo_cli.main import build_app

    out = tmp_path_factory.mktemp("fuzz") / "run"
    args = [
        "run",
        "dssm",
        "-r",
        "hnsw",
        "--param",
        "data.users=60",
        "--param",
        "data.items=30",
        "--param",
        "embed_dim=8",
        "--param",
        "dims=8",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.stderr
    return out


def damaged_copy(folder: Path, target: Path, name: str, header_key: str | None, value) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target)
    header = json.loads((target / name).read_text())
    if header_key is None:
        header = value
    else:
        header[header_key] = value
    (target / name).write_text(json.dumps(header))
    return target


@FUZZ
@given(
    key=st.sampled_from([None, "format", "format_version", "config", "files", "item_tables", "class"]),
    value=JSON_VALUES,
)
def test_model_json_loads_or_fails_in_one_line(saved_run: Path, tmp_path_factory, key, value) -> None:
    from zoo.models import load_model

    folder = damaged_copy(
        saved_run / "model", tmp_path_factory.mktemp("m") / "model", "model.json", key, value
    )
    try:
        load_model(folder)
    except Exception as exc:  # noqa: BLE001
        assert_clean(exc)


@FUZZ
@given(
    key=st.sampled_from(
        [None, "backend", "format_version", "dim", "count", "metric", "files", "build_params"]
    ),
    value=JSON_VALUES,
)
def test_index_json_loads_or_fails_in_one_line(saved_run: Path, tmp_path_factory, key, value) -> None:
    from zoo.registry import default_registry
    from zoo.retrieval.base import HEADER_FILE

    folder = damaged_copy(
        saved_run / "index", tmp_path_factory.mktemp("i") / "index", HEADER_FILE, key, value
    )
    try:
        default_registry().retriever("hnsw").load().load(folder)
    except Exception as exc:  # noqa: BLE001
        assert_clean(exc)


@FUZZ
@given(
    document=st.dictionaries(
        st.sampled_from(
            ["format", "schema_version", "config", "cells", "models", "summary", "runs", "machine"]
        ),
        JSON_VALUES,
        max_size=6,
    )
)
def test_bench_json_renders_or_fails_in_one_line(tmp_path_factory, document) -> None:
    from typer.testing import CliRunner

    from zoo_cli.main import build_app

    folder = tmp_path_factory.mktemp("b")
    (folder / "bench.json").write_text(
        json.dumps({"format": "recall-zoo-bench", "schema_version": 1, **document})
    )
    result = CliRunner().invoke(build_app(), ["report", str(folder), "--format", "json"])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code in (0, 5), result.stderr
