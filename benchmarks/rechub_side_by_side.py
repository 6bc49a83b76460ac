"""The seed tutorial's DSSM, GRU4Rec and MIND workflows against Torch-RecHub, side by side in one run.

    python benchmarks/rechub_side_by_side.py --rechub-python /path/to/rechub-venv/bin/python
    python benchmarks/rechub_side_by_side.py --workflows dssm --record benchmarks/results

The user code is written once (``benchmarks/rechub_workflows/``, one module per workflow, the library
imported through ``library.py``) and runs in a child process per library: recall-zoo with this
Python, Torch-RecHub 0.9 with ``--rechub-python`` (a separate environment; without it, or when it
cannot import ``torch_rechub``, only recall-zoo runs). Both read the same ``movielens.csv``: the
first ``--users`` MovieLens-1M users (by id), as the tutorial's ``pd.read_csv("movielens.csv")``.

Each child times library calls only, per stage: ``prepare`` (generate_seq_feature_match,
gen_model_input, df_to_dict, MatchDataGenerator and its loaders), ``fit`` (model, trainer, ``fit``)
and ``embed`` (``inference_embedding`` of the test users and the catalogue). HitRate@50 is computed
here, with numpy, by the same exact top-k for both: every catalogue item scored by inner product
(a multi-interest user by its best interest), the user's held-out last item a hit when among the 50
best. The ratio is Torch-RecHub's library time over ours (above 1: ours is faster).

GRU4Rec runs at the tutorial's 2 layers (Torch-RecHub builds 2 layers by default once ``num_layers``
is dropped from ``user_params``) and at 1 layer (``gru4rec-1layer``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CHILD = HERE / "rechub_workflows" / "child.py"
#: variant -> (workflow module, extra child arguments)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "dssm": ("dssm", []),
    "gru4rec": ("gru4rec", ["--layers", "2"]),
    "gru4rec-1layer": ("gru4rec", ["--layers", "1"]),
    "mind": ("mind", []),
}
LIBRARIES = ("zoo", "torch_rechub")
STAGES = ("prepare", "fit", "embed")
K = 50


# -- data -------------------------------------------------------------------------------------------------
def write_movielens_csv(ml1m: Path, users: int, path: Path) -> int:
    """The tutorial's ``movielens.csv`` (the columns of Torch-RecHub's ml-1m sample) for the first
    ``users`` MovieLens-1M users; returns the number of rows."""
    import pandas as pd

    def read(name: str, columns: list[str]) -> pd.DataFrame:
        return pd.read_csv(
            ml1m / name, sep="::", engine="python", names=columns, encoding="latin-1", header=None
        )

    ratings = read("ratings.dat", ["user_id", "movie_id", "rating", "timestamp"])
    ratings = ratings[ratings["user_id"] <= users]
    movies = read("movies.dat", ["movie_id", "title", "genres"])
    people = read("users.dat", ["user_id", "gender", "age", "occupation", "zip"])
    frame = ratings.merge(movies, on="movie_id", how="left").merge(people, on="user_id", how="left")
    frame = frame[
        [
            "user_id",
            "movie_id",
            "rating",
            "timestamp",
            "title",
            "genres",
            "gender",
            "age",
            "occupation",
            "zip",
        ]
    ]
    frame.to_csv(path, index=False)
    return len(frame)


# -- quality ----------------------------------------------------------------------------------------------
def hitrate_at_k(
    user: np.ndarray, item: np.ndarray, target: np.ndarray, catalogue: np.ndarray, k: int = K
) -> float:
    """Share of users whose target item is among the ``k`` best catalogue items by inner product
    (a [U, K, D] multi-interest user scores each item by its best interest). Exact; ties broken by
    catalogue order, as ``np.argsort(kind="stable")`` on the negated scores does."""
    hits = 0
    for start in range(0, len(user), 256):
        block = user[start : start + 256]
        scores = block @ item.T if block.ndim == 2 else np.einsum("ukd,nd->ukn", block, item).max(axis=1)
        k_eff = min(k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
        hits += int((catalogue[top] == target[start : start + 256, None]).any(axis=1).sum())
    return hits / max(len(user), 1)


# -- children ---------------------------------------------------------------------------------------------
def python_for(library: str, rechub_python: str | None) -> str | None:
    """The interpreter that runs ``library``'s child (None: not available here)."""
    if library == "zoo":
        return sys.executable
    if not rechub_python or not Path(rechub_python).is_file():
        return None
    probe = subprocess.run(
        [rechub_python, "-c", "import torch_rechub"], capture_output=True, text=True, check=False
    )
    return rechub_python if probe.returncode == 0 else None


def run_child(
    python: str, library: str, variant: str, csv: Path, workdir: Path, epochs: int, batch_size: int | None
) -> dict[str, Any]:
    """One workflow in a child process; returns its run.json plus HitRate@50 and the wall time."""
    workflow, extra = VARIANTS[variant]
    out = workdir / f"{variant}-{library}"
    command = [python, str(CHILD), workflow, str(csv), str(out), "--epochs", str(epochs), *extra]
    if batch_size:
        command += ["--batch-size", str(batch_size)]
    env = {**os.environ, "RECALL_WORKFLOW_LIBRARY": library, "TQDM_DISABLE": "1"}
    started, busy_started = time.perf_counter(), busy_cpu_seconds()
    children_started = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (children.ru_utime - children_started.ru_utime) + (
        children.ru_stime - children_started.ru_stime
    )
    busy_ended = busy_cpu_seconds()
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"error: {variant} under {library} failed (exit {done.returncode}):\n{tail}")
    info = json.loads((out / "run.json").read_text())
    with np.load(out / "embeddings.npz", allow_pickle=False) as arrays:
        info["hitrate@50"] = hitrate_at_k(
            arrays["user"], arrays["item"], arrays["target"], arrays["catalogue"]
        )
        info["test_users"] = int(arrays["user"].shape[0])
    info["library_s"] = sum(info["seconds"].get(s, 0.0) for s in STAGES)
    info["wall_s"] = wall
    # CPU other processes took while the child ran (near 0 for a valid figure)
    if busy_started is not None and busy_ended is not None:
        info["others_cpu_per_wall"] = max(0.0, busy_ended - busy_started - child_cpu) / max(wall, 1e-9)
    return info


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``; None elsewhere)."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def ratio(theirs: float, ours: float) -> float | None:
    """Torch-RecHub's seconds over ours (None when either is missing)."""
    return theirs / ours if theirs and ours else None


# -- reporting --------------------------------------------------------------------------------------------
def table(rows: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One line per (variant, library) and the ratio per variant."""
    lines = [
        f"{'workflow':<15} {'library':<13} {'rows':>8} {'prepare s':>10} {'fit s':>8} {'embed s':>8}"
        f" {'library s':>10} {'HR@50':>7}"
    ]
    for variant, by_library in rows.items():
        for library, r in by_library.items():
            s = r["seconds"]
            lines.append(
                f"{variant:<15} {library:<13} {r['train_rows']:>8,} {s['prepare']:>10.2f} {s['fit']:>8.2f}"
                f" {s['embed']:>8.2f} {r['library_s']:>10.2f} {r['hitrate@50']:>7.4f}"
            )
        if len(by_library) == 2:
            ours, theirs = by_library["zoo"], by_library["torch_rechub"]
            parts = [
                f"{stage} {ratio(theirs['seconds'][stage], ours['seconds'][stage]) or 0:.2f}x"
                for stage in STAGES
            ]
            lines.append(
                f"{'':<15} ratio (Torch-RecHub / ours):"
                f" library {ratio(theirs['library_s'], ours['library_s']):.2f}x"
                f" ({', '.join(parts)}); HR@50 {ours['hitrate@50']:.4f} vs {theirs['hitrate@50']:.4f}"
            )
    return "\n".join(lines)


def figures(rows: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Results-file figures: a row per (variant, library) and one per variant's ratios."""
    out: dict[str, Any] = {}
    for variant, by_library in rows.items():
        for library, r in by_library.items():
            label = "recall-zoo" if library == "zoo" else "Torch-RecHub 0.9.0"
            out[f"{variant}, {label}"] = {
                "train_rows": r["train_rows"],
                "prepare_s": round(r["seconds"]["prepare"], 2),
                "fit_s": round(r["seconds"]["fit"], 2),
                "embed_s": round(r["seconds"]["embed"], 2),
                "library_s": round(r["library_s"], 2),
                "hitrate@50": round(r["hitrate@50"], 4),
            }
            if r.get("others_cpu_per_wall") is not None:
                out[f"{variant}, {label}"]["others_cpu_per_wall"] = round(r["others_cpu_per_wall"], 2)
        if len(by_library) == 2:
            ours, theirs = by_library["zoo"], by_library["torch_rechub"]
            entry = {
                f"{stage}_s": ratio(theirs["seconds"][stage], ours["seconds"][stage]) for stage in STAGES
            }
            entry["library_s"] = ratio(theirs["library_s"], ours["library_s"])
            out[f"{variant}, ratio Torch-RecHub / ours"] = {
                k: round(v, 2) if v is not None else None for k, v in entry.items()
            }
    return out


def notes(rows: dict[str, dict[str, dict[str, Any]]], users: int, epochs: int) -> str:
    """What to know to read the figures, with the Torch-RecHub-only changes."""
    changes: list[str] = []
    for by_library in rows.values():
        for change in by_library.get("torch_rechub", {}).get("changes", []):
            if change not in changes:
                changes.append(change)
    text = (
        f"The seed tutorial's workflows as one user code per model, first {users} MovieLens-1M users,"
        f" {epochs} epoch(s), one run each, library time only (prepare = data helpers and loaders,"
        f" fit, embed = inference_embedding); ratio = Torch-RecHub seconds / recall-zoo seconds;"
        f" HitRate@50 by one exact numpy top-k over the catalogue for both; others_cpu_per_wall is the"
        f" CPU other processes took while a child ran (near 0 for a valid figure)."
    )
    if changes:
        text += " Torch-RecHub-only changes: " + "; ".join(changes) + "."
    return text


def public_command(argv: Sequence[str]) -> str:
    """The command as a user types it: ``--data`` and ``--workdir`` left out, other paths shortened
    (``--rechub-python rechub-venv/bin/python``, ``--record results``)."""

    def shown(option: str, value: str) -> str:
        if option == "--rechub-python":
            return "/".join(Path(value).parts[-3:])
        return Path(value).name

    words = ["python", "benchmarks/rechub_side_by_side.py"]
    skip_next, pending = False, ""
    for word in argv:
        if skip_next:
            skip_next = False
            continue
        if pending:
            words += [pending, shown(pending, word)]
            pending = ""
            continue
        option, equals, value = word.partition("=")
        if option in ("--data", "--workdir"):
            skip_next = not equals
        elif option in ("--record", "--json", "--rechub-python"):
            if equals:
                words.append(f"{option}={shown(option, value)}")
            else:
                pending = option
        else:
            words.append(word)
    return " ".join(words)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workflows",
        default=",".join(VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)} (default all)",
    )
    parser.add_argument("--users", type=int, default=600, help="first N MovieLens-1M users (default 600)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: each workflow's (512 / 256)")
    parser.add_argument("--data", default=None, help="MovieLens-1M folder (default: $ZOO_DATA_DIR/ml-1m)")
    parser.add_argument(
        "--rechub-python",
        default=os.environ.get("RECHUB_PYTHON"),
        help="Python of an environment with torch-rechub 0.9.0 (default $RECHUB_PYTHON)",
    )
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="zoo, torch_rechub or both")
    parser.add_argument(
        "--workdir", default=None, help="keep the children's outputs here (default: a temp dir)"
    )
    parser.add_argument("--record", default=None, metavar="DIR", help="write a results file into DIR")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every measured row to FILE")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.workflows.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--workflows: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    args.library_list = [x.strip() for x in args.libraries.split(",") if x.strip()]
    if not args.library_list or any(x not in LIBRARIES for x in args.library_list):
        parser.error(f"--libraries {args.libraries!r}: give zoo, torch_rechub or both")
    if args.users < 2 or args.epochs < 1:
        parser.error("--users must be >= 2 and --epochs >= 1")
    if args.record is not None and not Path(args.record).is_dir():
        parser.error(f"--record {args.record}: no such folder; create it or name another")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from zoo.data.locate import resolve_data_path
    from zoo.errors import ZooError
    from zoo.io import atomic_write_json
    from zoo.registry import default_registry

    try:
        ml1m = Path(resolve_data_path(default_registry().dataset("movielens-1m"), args.data))
    except ZooError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    pythons = {lib: python_for(lib, args.rechub_python) for lib in args.library_list}
    for lib, python in pythons.items():
        if python is None:
            print(
                f"note: {lib} skipped: no --rechub-python with torch_rechub importable"
                " (create a venv: pip install torch==2.13.0 torch-rechub==0.9.0)",
                file=sys.stderr,
            )
    libraries = [lib for lib in args.library_list if pythons[lib] is not None]
    with tempfile.TemporaryDirectory(prefix="rechub-side-by-side-") as scratch:
        workdir = Path(args.workdir) if args.workdir else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        csv = workdir / "movielens.csv"
        count = write_movielens_csv(ml1m, args.users, csv)
        print(f"movielens.csv: {count:,} ratings of the first {args.users} users", flush=True)
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for variant in args.variants:
            rows[variant] = {}
            for library in libraries:
                print(f"{variant}: {library} ...", flush=True)
                rows[variant][library] = run_child(
                    pythons[library], library, variant, csv, workdir, args.epochs, args.batch_size
                )
    print(table(rows))
    if args.json:
        atomic_write_json(Path(args.json), rows)
    if args.record:
        from zoo.environment import machine_info, versions

        date = time.strftime("%Y-%m-%d")
        info = machine_info()
        record = {
            "kind": "benchmark",
            "date": date,
            "title": f"The seed tutorial's workflows against Torch-RecHub 0.9.0"
            f" ({args.users} MovieLens-1M users)",
            "command": public_command(argv if argv is not None else sys.argv[1:]),
            "machine": {
                k: info.get(k)
                for k in ("cpu", "cores", "memory_gb", "gpu", "torch_threads")
                if info.get(k) is not None
            },
            "versions": {
                **{k: v for k, v in versions().items() if k in ("recall-zoo", "torch", "python")},
                **({"torch-rechub": "0.9.0"} if "torch_rechub" in libraries else {}),
            },
            "figures": figures(rows),
            "notes": notes(rows, args.users, args.epochs),
        }
        target = Path(args.record) / f"{date}-benchmark-rechub-side-by-side-cpu.json"
        atomic_write_json(target, record)
        print(f"recorded {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
