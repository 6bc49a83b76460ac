"""Every built-in dataset runs :class:`zoo.testing.datasets.DatasetConformance`, the suite a
third-party dataset plugin subclasses.

One class is generated per built-in dataset the registry lists. Datasets that read files need a
writer in ``WRITERS`` (small files in the dataset's own format, made from a synthetic log); a
folder-based dataset without one is not collected, and ``test_every_builtin_dataset_is_checked``
says which.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import write_ml1m
from zoo.registry import default_registry
from zoo.testing import tiny_interactions
from zoo.testing.datasets import DatasetConformance

ML100K_GENRES = 19


def _log() -> Any:
    return tiny_interactions(users=60, items=40, mean_length=10)


def _write_csv(folder: Path) -> Path:
    events = _log().events
    path = folder / "log.csv"
    events[["user_id", "item_id", "timestamp"]].to_csv(path, index=False)
    return path


def _write_ml1m(folder: Path) -> Path:
    return write_ml1m(folder / "ml-1m", _log())


def _write_ml100k(folder: Path) -> Path:
    events = _log().events
    target = folder / "ml-100k"
    target.mkdir()
    lines = (
        events["user_id"].astype(str)
        + "\t"
        + events["item_id"].astype(str)
        + "\t4\t"
        + events["timestamp"].astype(str)
    )
    (target / "u.data").write_text("\n".join(lines) + "\n")
    items = np.sort(events["item_id"].unique())
    flags = ["|".join("1" if g == i % ML100K_GENRES else "0" for g in range(ML100K_GENRES)) for i in items]
    (target / "u.item").write_text(
        "".join(
            f"{i}|Movie {i} (1999)|01-Jan-1999||http://x|{f}\n" for i, f in zip(items, flags, strict=True)
        ),
        encoding="latin-1",
    )
    users = np.sort(events["user_id"].unique())
    (target / "u.user").write_text("".join(f"{u}|30|{'MF'[u % 2]}|writer|12345\n" for u in users))
    return target


def _ratings_csv(folder_name: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        events = _log().events
        target = folder / folder_name
        target.mkdir()
        frame = events[["user_id", "item_id", "timestamp"]].rename(
            columns={"user_id": "userId", "item_id": "movieId"}
        )
        frame.insert(2, "rating", 4.0)
        frame.to_csv(target / "ratings.csv", index=False)
        items = np.sort(events["item_id"].unique())
        (target / "movies.csv").write_text(
            "movieId,title,genres\n" + "".join(f"{i},Movie {i} (1999),Drama|Comedy\n" for i in items)
        )
        return target

    return write


#: dataset name -> writer of small files in its format (for datasets with needs_path=True)
WRITERS: dict[str, Callable[[Path], Path]] = {
    "csv": _write_csv,
    "movielens-1m": _write_ml1m,
    "movielens-100k": _write_ml100k,
    "movielens-latest-small": _ratings_csv("ml-latest-small"),
    "movielens-20m": _ratings_csv("ml-20m"),
    "movielens-25m": _ratings_csv("ml-25m"),
}

#: per-dataset overrides of DatasetConformance's class attributes
TUNING: dict[str, dict[str, Any]] = {
    "synthetic": {"options": {"users": 80, "items": 50, "mean_length": 10}},
}


def _conformance_classes() -> dict[str, type[DatasetConformance]]:
    classes: dict[str, type[DatasetConformance]] = {}
    for spec in default_registry().list("dataset"):
        if spec.dist != "recall-zoo" or (spec.needs_path and spec.name not in WRITERS):
            continue
        attrs: dict[str, Any] = {"dataset_name": spec.qualified_name, **TUNING.get(spec.name, {})}
        if spec.name in WRITERS:
            writer = WRITERS[spec.name]
            attrs["write_data"] = lambda self, folder, _writer=writer: _writer(folder)
        name = "TestDataset_" + spec.name.replace("-", "_")
        classes[name] = type(name, (DatasetConformance,), {"__module__": __name__, **attrs})
    return classes


globals().update(_conformance_classes())


def test_every_builtin_dataset_is_checked() -> None:
    builtin = {s.name for s in default_registry().list("dataset") if s.dist == "recall-zoo"}
    checked = {c.dataset_name.partition(":")[2] for n, c in globals().items() if n.startswith("TestDataset_")}
    assert builtin - checked == set(), f"add a writer to WRITERS for {sorted(builtin - checked)}"
    assert {"synthetic", "csv", "movielens-1m"} <= checked
