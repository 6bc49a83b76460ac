"""The ``zoo bench`` grid runner: every model x retriever x build setting x query setting.

Each model is trained once through the pipeline's stages and cached in the bench folder
(:mod:`zoo.bench.models`); each index is built once per build setting, and its query settings are
swept with ``set_query_params`` (no rebuild); each cell is measured by :mod:`zoo.bench.measure`.
Every finished cell is written to ``bench.json`` at once (:mod:`zoo.bench.document`), so an
interrupted bench resumes where it stopped; ``force`` measures everything again. Nothing here prints:
progress goes to a :class:`BenchProgress` (the CLI draws bars with it).

What a cell measures, per K (see :mod:`zoo.bench.schema` for the exact fields): search recall
against the exact top-K and queries/s of one batched query of every test user (median of ``repeat``
passes, a K-interest user counts once), p50/p99 latency of one-user queries, and the task quality
through the index with seen items excluded. Per build setting: build time, memory and on-disk size
of the index.
"""

from __future__ import annotations

import shutil
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo import environment
from zoo.bench.document import cell_id, cell_key, now, open_document
from zoo.bench.grid import Grid, resolve_grid
from zoo.bench.measure import fit_and_size, measure_queries
from zoo.bench.models import EMBEDDINGS_FILE, MODELS_DIR, ModelData, load_model_data, train_model
from zoo.bench.schema import BENCH_FILE
from zoo.errors import UsageError, one_line
from zoo.io import atomic_write_json
from zoo.pipeline import Progress, RunConfig
from zoo.registry import Registry, default_registry

__all__ = ["BenchConfig", "BenchProgress", "run_bench"]

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
    #: prepared-data folder for every model's run (RunConfig.prepared_dir)
    prepared_dir: str | None = None

    def validate(self) -> None:
        if not self.models:
            raise UsageError(
                "zoo bench needs at least one model, e.g. 'zoo bench dssm --retriever exact,hnsw'"
            )
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
            raise UsageError(
                "zoo bench measures inner-product retrieval (the models' score); metric must be 'ip'"
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ks"] = list(self.ks)
        out["recall_k"] = min(self.ks)
        return out

    def run_config(self, model: str) -> RunConfig:
        """The pipeline's configuration for training ``model`` in this bench (nothing saved: the bench
        keeps its own model cache)."""
        return RunConfig(
            model=model,
            dataset=self.dataset,
            data_path=self.data_path,
            protocol=self.protocol,
            device=self.device,
            epochs=self.epochs,
            seed=self.seed,
            params=dict(self.params),
            dataset_options=dict(self.dataset_options),
            protocol_overrides=dict(self.protocol_overrides),
            ks=tuple(self.ks),
            metric=self.metric,
            save=False,
            prepared_dir=self.prepared_dir,
        )


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
        self.doc["updated"] = now()
        atomic_write_json(self.out / BENCH_FILE, self.doc)

    def finished(self, key: str) -> bool:
        cell = self.cells.get(key)
        if self.config.force or cell is None or cell.get("status") != "done":
            return False
        return all(str(k) in cell.get("at", {}) for k in self.config.ks)

    # -- run -------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from zoo.device import resolve_device

        config = self.config
        model_specs = [self.registry.model(name) for name in config.models]  # typos fail before any work
        self.registry.dataset(config.dataset)
        device = resolve_device(config.device)
        retriever_specs = [self.registry.retriever(name) for name in config.retrievers]
        available = [s for s in retriever_specs if s.available]
        grid = resolve_grid([s.name for s in available], config.grid_file, registry=self.registry)

        self.out.mkdir(parents=True, exist_ok=True)
        self.doc = open_document(self.out, config)
        if config.force:
            shutil.rmtree(self.out / MODELS_DIR, ignore_errors=True)
        self.cells = {c["key"]: c for c in self.doc.get("cells", []) if "key" in c}
        run_entry = {"started": now(), "load_average_start": environment.load_average()}
        self.doc["runs"].append(run_entry)
        self.doc["config"]["device_resolved"] = str(device)
        self.doc["machine"] = environment.machine_info(device)
        self.doc["versions"] = environment.versions()
        self.doc["grid"].update(grid.to_dict())
        self._record_plugins(model_specs, retriever_specs, grid)
        self.doc["versions"].update(
            {
                r["name"]: r["backend_version"]
                for r in self.doc["plugins"]["retrievers"]
                if r.get("backend_version")
            }
        )
        for spec in retriever_specs:
            if not spec.available:
                self.progress.warning(
                    f"warning: retriever '{spec.name}' is unavailable"
                    f" ({', '.join(spec.missing_requirements())} not installed); skipped. Install it with:"
                    f" {spec.install_hint()}"
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
                finished=now(),
                load_average_end=environment.load_average(),
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
                    self.progress.warning(
                        f"warning: retriever '{spec.name}' failed to import: {one_line(exc)}"
                    )
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

    def _settings(
        self, spec: Any, grid: Grid, device: Any
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
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
        skipped_cells = sum(len(q) for r in retrievers for _, q in settings[r.name]) - sum(
            len(q) for _, _, q in pending
        )
        for _ in range(skipped_cells):
            self.skipped += 1
            self.progress.advance(f"{name}: finished before", skipped=True)
        if not pending:
            return
        folder = self.out / MODELS_DIR / name
        models = self.doc["models"]
        data = None
        if (
            not self.config.force
            and models.get(name, {}).get("status") == "done"
            and (folder / EMBEDDINGS_FILE).is_file()
        ):
            self.progress.stage("load", f"{name}: trained model and embeddings from {folder}")
            try:
                data = load_model_data(folder)
            except Exception as exc:  # noqa: BLE001 - any damage (truncated zip, bad JSON...) means: train again
                self.progress.warning(
                    f"warning: {folder / EMBEDDINGS_FILE} unreadable ({one_line(exc)}); training again"
                )
        if data is None:
            try:
                data, info = train_model(
                    self.config.run_config(name), folder, registry=self.registry, progress=self.progress
                )
                info["finished"] = now()
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                self.failures += 1
                models[name] = {
                    "status": "failed",
                    "error": one_line(exc),
                    "traceback": traceback.format_exc(limit=20),
                }
                self.progress.warning(
                    f"warning: model '{name}' failed: {one_line(exc)}; its cells are skipped"
                )
                for _, _, queries in pending:
                    for _ in queries:
                        self.progress.advance(f"{name}: model failed", failed=True)
                self.write()
                return
            models[name] = info
            self.write()
        for retriever_spec, build, queries in pending:
            self._bench_index(name, data, retriever_spec, build, queries)

    def _bench_index(
        self, model: str, data: ModelData, spec: Any, build: dict[str, Any], queries: list[dict[str, Any]]
    ) -> None:
        todo = [q for q in queries if not self.finished(cell_key(model, spec.name, build, q))]
        for _ in range(len(queries) - len(todo)):
            self.skipped += 1
            self.progress.advance(f"{model} x {spec.name}: finished before", skipped=True)
        label = f"{model} x {spec.name} {_short(build)}"
        self.progress.stage("index", label)
        model_info = self.doc["models"].get(model, {})
        try:
            retriever = self.registry.create_retriever(
                spec.qualified_name, metric=self.config.metric, **build
            )
            # Every cell is measured at the backend's query defaults overridden by its own settings only,
            # never at what the previous cell left behind (grids may merge groups with different keys).
            query_defaults = {**dict(getattr(spec, "query_params", None) or {}), **retriever.query_params}
            scratch = self.out / SCRATCH_DIR / cell_id(cell_key(model, spec.name, build, {}))
            sizes = fit_and_size(retriever, data, scratch, warn=self.progress.warning)
            header = retriever.header()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            for query in todo:
                self._failed(model, spec, build, query, exc, model_info)
            return
        base_header = {
            "format",
            "format_version",
            "backend",
            "backend_version",
            "zoo_version",
            "metric",
            "dim",
            "count",
            "build_params",
            "query_params",
        }
        index_info = {k: v for k, v in header.items() if k not in base_header}
        rng = np.random.default_rng(self.config.seed)
        users = data.embedded.num_users
        latency_rows = rng.choice(users, size=min(users, self.config.latency_queries), replace=False)
        for query in todo:
            key = cell_key(model, spec.name, build, query)
            try:
                retriever.set_query_params(**{**query_defaults, **query})
                at = measure_queries(
                    retriever,
                    data,
                    tuple(self.config.ks),
                    repeat=self.config.repeat,
                    latency_rows=latency_rows,
                )
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
                "finished": now(),
                "backend_version": header.get("backend_version"),
                "index_info": index_info,
                "train_s": model_info.get("train_s"),
                **sizes,
                "at": at,
            }
            self.measured += 1
            self.write()
            primary = at[str(min(self.config.ks))]
            self.progress.advance(
                f"{model} x {spec.name} {_short(query)}: recall {primary['recall']:.3f},"
                f" {primary['qps']:,.0f} q/s"
            )

    def _failed(
        self,
        model: str,
        spec: Any,
        build: dict[str, Any],
        query: dict[str, Any],
        exc: BaseException,
        model_info: dict[str, Any],
    ) -> None:
        key = cell_key(model, spec.name, build, query)
        message = one_line(exc)
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
            "finished": now(),
            "train_s": model_info.get("train_s"),
            "at": {},
        }
        self.write()
        self.progress.warning(
            f"warning: {model} x {spec.name} {_short(build)} {_short(query)} failed: {message}"
        )
        self.progress.advance(f"{model} x {spec.name}: failed", failed=True)


def _short(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def run_bench(
    config: BenchConfig, *, registry: Registry | None = None, progress: BenchProgress | None = None
) -> dict[str, Any]:
    """Run (or resume) the bench described by ``config``; returns the bench document (``bench.json``).

    The bench folder is validated first (a folder that is not a bench is refused) and locked while
    the bench runs: a second bench on the same folder stops at once. Reports are rendered
    separately (:func:`zoo.bench.report.write_reports`).
    """
    from zoo.folders import check_bench_folder, writer_lock

    config.validate()
    check_bench_folder(Path(config.out))
    with writer_lock(Path(config.out)):
        return _Bench(config, registry or default_registry(), progress or BenchProgress()).run()
