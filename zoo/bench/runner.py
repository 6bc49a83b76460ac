"""The ``zoo bench`` grid runner: every model x retriever x build setting x query setting.

Each model is trained once (:func:`zoo.pipeline.train_model`) and embedded once
(:func:`zoo.pipeline.embed_test`), or loaded from a previous run in the same folder; each index is
built once per build setting, and its query settings are swept with ``set_query_params`` (no
rebuild). Every finished cell is written to ``bench.json`` at once, so an interrupted bench resumes
where it stopped; ``force`` measures everything again. Nothing here prints: progress goes to a
:class:`BenchProgress` (the CLI draws bars with it).

What a cell measures, per K (see :mod:`zoo.bench.schema` for the exact fields): search recall
against the exact top-K and queries/s of one batched query of every test user (median of ``repeat``
passes, a K-interest user counts once), p50/p99 latency of one-user queries, and the task quality
through the index with seen items excluded (:func:`zoo.pipeline.evaluate_retriever`). Per build
setting: build time, memory and on-disk size of the index.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import shutil
import statistics
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bench import machine
from zoo.bench.grid import Grid, canonical, resolve_grid
from zoo.bench.schema import BENCH_FILE, FINGERPRINT_KEYS, load_document, new_document
from zoo.errors import UsageError, ZooError
from zoo.io import atomic_write_json
from zoo.pipeline import Progress
from zoo.registry import Registry, default_registry

__all__ = ["BenchConfig", "BenchProgress", "run_bench"]

MODELS_DIR = "models"
EMBEDDINGS_FILE = "embeddings.npz"
SCRATCH_DIR = ".scratch"


@dataclass
class BenchConfig:
    """Everything ``zoo bench`` needs (the CLI parses options into one)."""

    models: list[str]
    retrievers: list[str]
    dataset: str = "synthetic"
    data_path: str | None = None
    protocol: str | None = None
    device: str = "auto"
    grid_file: str | None = None
    ks: tuple[int, ...] = (10, 50, 100)
    repeat: int = 3
    out: str = "runs/bench"
    force: bool = False
    seed: int = 0
    epochs: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    protocol_overrides: dict[str, Any] = field(default_factory=dict)
    recall_target: float = 0.95
    latency_queries: int = 1000
    metric: str = "ip"

    def validate(self) -> None:
        if not self.models:
            raise UsageError("zoo bench needs at least one model, e.g. 'zoo bench dssm --retriever exact,hnsw'")
        if not self.retrievers:
            raise UsageError("--retriever needs at least one retriever, e.g. --retriever exact,hnsw")
        for what, names in (("model", self.models), ("retriever", self.retrievers)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise UsageError(f"{what} {', '.join(duplicates)} listed twice; list each once")
        ks = tuple(self.ks)
        if not ks or any(isinstance(k, bool) or int(k) != k or k < 1 for k in ks):
            raise UsageError(f"--k values must be positive integers, got {ks}")
        self.ks = tuple(sorted({int(k) for k in ks}))
        if self.repeat < 1:
            raise UsageError(f"--repeat must be at least 1, got {self.repeat}")
        if self.latency_queries < 0:
            raise UsageError(f"--latency-queries must be >= 0, got {self.latency_queries}")
        if not 0.0 < self.recall_target <= 1.0:
            raise UsageError(f"--recall-target must be in (0, 1], got {self.recall_target}")
        if self.metric != "ip":
            raise UsageError("zoo bench measures inner-product retrieval (the models' score); metric must be 'ip'")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ks"] = list(self.ks)
        out["recall_k"] = min(self.ks)
        return out


class BenchProgress(Progress):
    """Receives bench events (the default ignores them). Also a :class:`zoo.pipeline.Progress`."""

    def start(self, total_cells: int) -> None:
        """The bench will visit ``total_cells`` cells (finished ones are skipped quickly)."""

    def advance(self, label: str, *, skipped: bool = False, failed: bool = False) -> None:
        """One cell is done (or skipped as already finished, or failed)."""

    def warning(self, line: str) -> None:
        """Something went wrong but the bench goes on (a failed model, build or cell; a missing backend)."""

    def finish(self) -> None:
        """The bench is over."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def cell_key(model: str, retriever: str, build: dict[str, Any], query: dict[str, Any]) -> str:
    return f"{model}|{retriever}|{canonical(build)}|{canonical(query)}"


def cell_id(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ZooError):
        return exc.message
    return " ".join(f"{type(exc).__name__}: {exc}".split())


# -- the bench document --------------------------------------------------------------------------------
def _open_document(out: Path, config: BenchConfig) -> dict[str, Any]:
    """The existing ``bench.json`` when it can be resumed, else a fresh document."""
    path = out / BENCH_FILE
    fresh = config.to_dict()
    if config.force or not path.exists():
        doc = new_document()
        doc["created"] = _now()
        doc["config"] = fresh
        return doc
    doc = load_document(path)
    previous = doc.get("config", {})
    differing = [key for key in FINGERPRINT_KEYS + ("ks",) if _jsonable(previous.get(key)) != _jsonable(fresh.get(key))]
    if differing:
        details = "; ".join(f"{k}: {previous.get(k)!r} then, {fresh.get(k)!r} now" for k in differing)
        raise UsageError(
            f"{path} holds a bench with other settings ({details}); pass --force to measure everything again"
            " there, or --out NEW_FOLDER"
        )
    # Union of models and retrievers over the runs (the report shows every measured cell).
    for key in ("models", "retrievers"):
        fresh[key] = list(dict.fromkeys([*previous.get(key, []), *fresh[key]]))
    doc["config"] = fresh
    return doc


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


# -- models ------------------------------------------------------------------------------------------------
@dataclass
class ModelData:
    """A trained (or reloaded) model's test task, vectors and exact top-K lists."""

    test: Any  # zoo.pipeline.TestEmbeddings
    exact_raw: np.ndarray  # [U, max_k] exact top item ids without masking


def _run_config(config: BenchConfig, model: str) -> Any:
    from zoo.pipeline import RunConfig

    return RunConfig(
        model=model,
        dataset=config.dataset,
        data_path=config.data_path,
        protocol=config.protocol,
        device=config.device,
        epochs=config.epochs,
        seed=config.seed,
        params=dict(config.params),
        dataset_options=dict(config.dataset_options),
        protocol_overrides=dict(config.protocol_overrides),
        ks=tuple(config.ks),
        metric=config.metric,
        save=False,
    )


def _train(config: BenchConfig, name: str, folder: Path, registry: Registry, progress: BenchProgress) -> tuple[ModelData, dict[str, Any]]:
    """Train ``name``, embed the test users and items, save the model and embeddings to ``folder``."""
    from zoo.evaluate import ranking_metrics, topk_items
    from zoo.pipeline import embed_test, popularity_metrics, train_model

    ks = tuple(config.ks)
    trained = train_model(_run_config(config, name), registry=registry, progress=progress)
    progress.stage("embed", f"{name}: test users and catalogue, exact top-{max(ks)}")
    test = embed_test(trained, ks)
    rows, _ = topk_items(test.user_vectors, test.item_vectors, max(ks), device=trained.device)
    rows = rows.numpy()
    catalogue = test.catalogue
    exact_raw = np.where(rows >= 0, catalogue[rows.clip(min=0)], -1)
    data = ModelData(test=test, exact_raw=exact_raw)
    user_vectors = test.user_vectors.detach().cpu().numpy()
    info: dict[str, Any] = {
        "status": "done",
        "error": None,
        "family": trained.model_spec.family,
        "train_s": trained.timings.get("train_s"),
        "training": {k: v for k, v in trained.training_summary().items() if k != "history"},
        "history": trained.history,
        "timings": {**trained.timings, **test.timings},
        "data": {**trained.dataset_stats, **trained.data.summary()},
        "protocol": trained.data.card,
        "model_params": trained.model_cfg,
        "trainer": trained.trainer_cfg,
        "users": int(test.task.num_users),
        "items": int(len(catalogue)),
        "dim": int(user_vectors.shape[-1]),
        "interests": int(user_vectors.shape[1]) if user_vectors.ndim == 3 else 1,
        "metrics": {
            "exact": ranking_metrics(test.exact_top, test.task.targets, ks=ks),
            "popularity": popularity_metrics(trained, test, ks),
        },
        "artifacts": f"{MODELS_DIR}/{name}",
        "finished": _now(),
    }
    _save_model(folder, trained, data, progress, name)
    return data, info


def _save_model(folder: Path, trained: Any, data: ModelData, progress: BenchProgress, name: str) -> None:
    from zoo.io import atomic_dir, commit_dir

    test = data.test
    tmp = atomic_dir(folder)
    try:
        exclude = test.task.exclude
        arrays = {
            "user_vectors": test.user_vectors.detach().cpu().numpy().astype(np.float32),
            "item_vectors": test.item_vectors.detach().cpu().numpy().astype(np.float32),
            "catalogue": np.asarray(test.catalogue, dtype=np.int64),
            "targets": np.asarray(test.task.targets),
            "exact_top": np.asarray(test.exact_top, dtype=np.int64),
            "exact_raw": np.asarray(data.exact_raw, dtype=np.int64),
        }
        if exclude is not None:
            arrays["exclude_indptr"] = exclude[0].numpy().astype(np.int64)
            arrays["exclude_rows"] = exclude[1].numpy().astype(np.int64)
        np.savez(tmp / EMBEDDINGS_FILE, **arrays)
        try:
            trained.model.save(tmp / "model", extra={"schema": trained.data.schema.to_dict(), "protocol": trained.data.protocol.name})
            trained.data.encoder.save(tmp / "model" / "vocab.json")
        except Exception as exc:  # a model plugin without save(): the embeddings are what the bench needs
            shutil.rmtree(tmp / "model", ignore_errors=True)
            progress.warning(f"warning: model '{name}' could not be saved ({_one_line(exc)}); its embeddings were kept")
        commit_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_model_data(folder: Path) -> ModelData:
    """The test task and vectors saved by a previous run (no retraining)."""
    import torch

    from zoo.data.match import RankingTask
    from zoo.pipeline import TestEmbeddings

    path = folder / EMBEDDINGS_FILE
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    exclude = None
    if "exclude_indptr" in arrays:
        exclude = (torch.from_numpy(arrays["exclude_indptr"]), torch.from_numpy(arrays["exclude_rows"]))
    task = RankingTask(
        users={}, targets=arrays["targets"], catalogue=torch.from_numpy(arrays["catalogue"]), exclude=exclude, name="test"
    )
    test = TestEmbeddings(
        task=task,
        user_vectors=torch.from_numpy(arrays["user_vectors"]),
        item_vectors=torch.from_numpy(arrays["item_vectors"]),
        exact_top=arrays["exact_top"],
        timings={},
    )
    return ModelData(test=test, exact_raw=arrays["exact_raw"])


# -- measurements ------------------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def measure_queries(
    retriever: Any, data: ModelData, ks: tuple[int, ...], *, repeat: int, latency_rows: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Recall, throughput, latency and task quality of a fitted retriever at every K."""
    from zoo.evaluate import ann_recall
    from zoo.pipeline import evaluate_retriever
    from zoo.retrieval.merge import query_interests

    test = data.test
    vectors = np.ascontiguousarray(test.user_vectors.detach().cpu().numpy(), dtype=np.float32)
    users = int(vectors.shape[0])
    at: dict[str, dict[str, Any]] = {}
    for k in ks:
        evaluated = evaluate_retriever(retriever, test, (k,))  # also warms the index up
        times: list[float] = []
        found = None
        for _ in range(repeat):
            started = time.perf_counter()
            ids, _ = query_interests(retriever, vectors, k)
            times.append(time.perf_counter() - started)
            found = ids if found is None else found
        latencies = []
        for row in latency_rows:
            one = vectors[row : row + 1]
            started = time.perf_counter()
            query_interests(retriever, one, k)
            latencies.append(time.perf_counter() - started)
        median = statistics.median(times)
        at[str(k)] = {
            "recall": ann_recall(found[:, :k], data.exact_raw[:, :k]),
            "qps": users / max(median, 1e-12),
            "qps_best": users / max(min(times), 1e-12),
            "query_s": times,
            "latency_ms": {
                "p50": _percentile(latencies, 50) * 1e3,
                "p99": _percentile(latencies, 99) * 1e3,
                "mean": float(np.mean(latencies)) * 1e3 if latencies else float("nan"),
                "samples": len(latencies),
            },
            "quality": {name: value for name, value in evaluated["metrics"].items()},
            "recall_masked": evaluated["recall_vs_exact"].get(f"recall@{k}"),
            "eval_qps": evaluated["queries_per_s"],
        }
    return at


def _index_sizes(retriever: Any, scratch: Path, warn: Any = None) -> tuple[int | None, int | None, str]:
    """(memory bytes, disk bytes, how memory was known) after saving the index to ``scratch``.

    A failed save (full disk, a backend that cannot save) leaves the disk size unknown and is
    reported through ``warn``; the index itself is still measured.
    """
    disk = None
    try:
        retriever.save(scratch)
        disk = sum(f.stat().st_size for f in scratch.rglob("*") if f.is_file())
    except Exception as exc:  # noqa: BLE001 - only the disk size is lost
        if warn is not None:
            warn(f"warning: could not save the {retriever.name} index to measure its size on disk ({_one_line(exc)})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    memory = None
    reporter = getattr(retriever, "memory_bytes", None)
    if callable(reporter):
        memory = reporter()
    return (int(memory) if memory is not None else None), disk, "reported"


# -- the runner ----------------------------------------------------------------------------------------------
class _Bench:
    def __init__(self, config: BenchConfig, registry: Registry, progress: BenchProgress) -> None:
        self.config = config
        self.registry = registry
        self.progress = progress
        self.out = Path(config.out)
        self.doc: dict[str, Any] = {}
        self.cells: dict[str, dict[str, Any]] = {}
        self.measured = 0
        self.skipped = 0
        self.failures = 0

    # -- document ------------------------------------------------------------------------------------
    def write(self) -> None:
        self.doc["cells"] = list(self.cells.values())
        self.doc["updated"] = _now()
        atomic_write_json(self.out / BENCH_FILE, self.doc)

    def finished(self, key: str) -> bool:
        cell = self.cells.get(key)
        if self.config.force or cell is None or cell.get("status") != "done":
            return False
        return all(str(k) in cell.get("at", {}) for k in self.config.ks)

    # -- run -------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from zoo.device import resolve_device
        from zoo.folders import check_bench_folder

        config = self.config
        config.validate()
        check_bench_folder(self.out)
        model_specs = [self.registry.model(name) for name in config.models]  # typos fail before any work
        self.registry.dataset(config.dataset)
        device = resolve_device(config.device)
        retriever_specs = [self.registry.retriever(name) for name in config.retrievers]
        available = [s for s in retriever_specs if s.available]
        grid = resolve_grid([s.name for s in available], config.grid_file, registry=self.registry)

        self.out.mkdir(parents=True, exist_ok=True)
        self.doc = _open_document(self.out, config)
        if config.force:
            shutil.rmtree(self.out / MODELS_DIR, ignore_errors=True)
        self.cells = {c["key"]: c for c in self.doc.get("cells", []) if "key" in c}
        run_entry = {"started": _now(), "load_average_start": machine.load_average()}
        self.doc["runs"].append(run_entry)
        self.doc["config"]["device_resolved"] = str(device)
        self.doc["machine"] = machine.machine_info(device)
        self.doc["versions"] = machine.versions()
        self.doc["grid"].update(grid.to_dict())
        self._record_plugins(model_specs, retriever_specs, grid)
        for spec in retriever_specs:
            if not spec.available:
                self.progress.warning(
                    f"warning: retriever '{spec.name}' is unavailable ({', '.join(spec.missing_requirements())} not"
                    f" installed); skipped. Install it with: {spec.install_hint()}"
                )

        settings = {spec.name: self._settings(spec, grid, device) for spec in available}
        total = len(model_specs) * sum(len(q) for plan in settings.values() for _, q in plan)
        self.progress.start(total)
        self.write()
        try:
            for spec in model_specs:
                self._bench_model(spec, available, settings)
        finally:
            run_entry.update(
                finished=_now(),
                load_average_end=machine.load_average(),
                cells_measured=self.measured,
                cells_skipped=self.skipped,
                failures=self.failures,
            )
            from zoo.bench.summary import summarize

            self.doc["summary"] = summarize(self.doc)
            self.write()
            self.progress.finish()
        return self.doc

    def _record_plugins(self, model_specs: list[Any], retriever_specs: list[Any], grid: Grid) -> None:
        known = {r["name"]: r for r in self.doc["plugins"].get("retrievers", [])}
        for spec in retriever_specs:
            entry = known.setdefault(spec.name, {"name": spec.name})
            entry.update(
                dist=spec.dist,
                available=spec.available,
                install=None if spec.available else spec.install_hint(),
                grid_source=grid.sources.get(spec.name),
            )
            if spec.available:
                try:
                    entry["backend_version"] = spec.load().backend_version()
                except Exception as exc:  # pragma: no cover - a broken backend module
                    entry["backend_version"] = None
                    self.progress.warning(f"warning: retriever '{spec.name}' failed to import: {_one_line(exc)}")
        self.doc["plugins"]["retrievers"] = list(known.values())
        models = {m["name"]: m for m in self.doc["plugins"].get("models", [])}
        for spec in model_specs:
            models[spec.name] = {"name": spec.name, "dist": spec.dist, "family": spec.family}
        self.doc["plugins"]["models"] = list(models.values())
        unavailable = {u["name"]: u for u in self.doc.get("unavailable", [])}
        for spec in retriever_specs:
            if spec.available:
                unavailable.pop(spec.name, None)
            else:
                unavailable[spec.name] = {
                    "name": spec.name,
                    "reason": f"{', '.join(spec.missing_requirements())} not installed",
                    "install": spec.install_hint(),
                }
        self.doc["unavailable"] = list(unavailable.values())

    def _settings(self, spec: Any, grid: Grid, device: Any) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        plans = []
        for build, queries in grid.settings(spec.name):
            build = dict(build)
            if "device" in spec.build_params and "device" not in build:
                build["device"] = str(device)  # GPU-capable retrievers follow --device unless the grid says
            plans.append((build, queries))
        return plans

    def _bench_model(self, spec: Any, retrievers: list[Any], settings: dict[str, list[Any]]) -> None:
        name = spec.name
        pending = [
            (r, build, queries)
            for r in retrievers
            for build, queries in settings[r.name]
            if not all(self.finished(cell_key(name, r.name, build, q)) for q in queries)
        ]
        skipped_cells = sum(len(q) for r in retrievers for _, q in settings[r.name]) - sum(len(q) for _, _, q in pending)
        for _ in range(skipped_cells):
            self.skipped += 1
            self.progress.advance(f"{name}: finished before", skipped=True)
        if not pending:
            return
        folder = self.out / MODELS_DIR / name
        models = self.doc["models"]
        data = None
        if not self.config.force and models.get(name, {}).get("status") == "done" and (folder / EMBEDDINGS_FILE).is_file():
            self.progress.stage("load", f"{name}: trained model and embeddings from {folder}")
            try:
                data = _load_model_data(folder)
            except Exception as exc:  # noqa: BLE001 - any damage (truncated zip, bad JSON...) means: train again
                self.progress.warning(f"warning: {folder / EMBEDDINGS_FILE} unreadable ({_one_line(exc)}); training again")
        if data is None:
            try:
                data, info = _train(self.config, name, folder, self.registry, self.progress)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                self.failures += 1
                models[name] = {"status": "failed", "error": _one_line(exc), "traceback": traceback.format_exc(limit=20)}
                self.progress.warning(f"warning: model '{name}' failed: {_one_line(exc)}; its cells are skipped")
                for _, _, queries in pending:
                    for _ in queries:
                        self.progress.advance(f"{name}: model failed", failed=True)
                self.write()
                return
            models[name] = info
            self.write()
        for retriever_spec, build, queries in pending:
            self._bench_index(name, data, retriever_spec, build, queries)

    def _bench_index(self, model: str, data: ModelData, spec: Any, build: dict[str, Any], queries: list[dict[str, Any]]) -> None:
        todo = [q for q in queries if not self.finished(cell_key(model, spec.name, build, q))]
        for _ in range(len(queries) - len(todo)):
            self.skipped += 1
            self.progress.advance(f"{model} x {spec.name}: finished before", skipped=True)
        label = f"{model} x {spec.name} {_short(build)}"
        self.progress.stage("index", label)
        test = data.test
        model_info = self.doc["models"].get(model, {})
        try:
            retriever = self.registry.create_retriever(spec.qualified_name, metric=self.config.metric, **build)
            # Every cell is measured at the backend's query defaults overridden by its own settings only,
            # never at what the previous cell left behind (grids may merge groups with different keys).
            query_defaults = {**dict(getattr(spec, "query_params", None) or {}), **retriever.query_params}
            before = machine.rss_bytes()
            started = time.perf_counter()
            retriever.fit(test.item_vectors.detach().cpu().numpy(), ids=test.catalogue)
            build_s = time.perf_counter() - started
            after = machine.rss_bytes()
            scratch = self.out / SCRATCH_DIR / cell_id(cell_key(model, spec.name, build, {}))
            memory, disk, method = _index_sizes(retriever, scratch, warn=self.progress.warning)
            if memory is None and before is not None and after is not None:
                memory, method = max(0, after - before), "rss"
            header = retriever.header()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            for query in todo:
                self._failed(model, spec, build, query, exc, model_info)
            return
        base_header = {"format", "format_version", "backend", "backend_version", "zoo_version", "metric", "dim", "count",
                       "build_params", "query_params"}
        index_info = {k: v for k, v in header.items() if k not in base_header}
        rng = np.random.default_rng(self.config.seed)
        users = int(test.task.num_users)
        latency_rows = rng.choice(users, size=min(users, self.config.latency_queries), replace=False)
        for query in todo:
            key = cell_key(model, spec.name, build, query)
            try:
                retriever.set_query_params(**{**query_defaults, **query})
                at = measure_queries(retriever, data, tuple(self.config.ks), repeat=self.config.repeat, latency_rows=latency_rows)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                self._failed(model, spec, build, query, exc, model_info)
                continue
            self.cells[key] = {
                "key": key,
                "id": cell_id(key),
                "model": model,
                "retriever": spec.name,
                "build": build,
                "query": query,
                "effective": {"build": dict(retriever.build_params), "query": dict(retriever.query_params)},
                "status": "done",
                "error": None,
                "finished": _now(),
                "backend_version": header.get("backend_version"),
                "index_info": index_info,
                "train_s": model_info.get("train_s"),
                "build_s": build_s,
                "memory_bytes": memory,
                "memory_method": method,
                "disk_bytes": disk,
                "at": at,
            }
            self.measured += 1
            self.write()
            primary = at[str(min(self.config.ks))]
            self.progress.advance(
                f"{model} x {spec.name} {_short(query)}: recall {primary['recall']:.3f}, {primary['qps']:,.0f} q/s"
            )

    def _failed(self, model: str, spec: Any, build: dict[str, Any], query: dict[str, Any], exc: BaseException, model_info: dict[str, Any]) -> None:
        key = cell_key(model, spec.name, build, query)
        message = _one_line(exc)
        self.failures += 1
        self.cells[key] = {
            "key": key,
            "id": cell_id(key),
            "model": model,
            "retriever": spec.name,
            "build": build,
            "query": query,
            "status": "failed",
            "error": message,
            "traceback": traceback.format_exc(limit=20),
            "finished": _now(),
            "train_s": model_info.get("train_s"),
            "at": {},
        }
        self.write()
        self.progress.warning(f"warning: {model} x {spec.name} {_short(build)} {_short(query)} failed: {message}")
        self.progress.advance(f"{model} x {spec.name}: failed", failed=True)


def _short(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def run_bench(config: BenchConfig, *, registry: Registry | None = None, progress: BenchProgress | None = None) -> dict[str, Any]:
    """Run (or resume) the bench described by ``config``; returns the bench document (``bench.json``).

    Reports are rendered separately (:func:`zoo.bench.report.write_reports`).
    """
    return _Bench(config, registry or default_registry(), progress or BenchProgress()).run()
