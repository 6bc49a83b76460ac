"""Benchmark grids: which build and query parameters ``zoo bench`` tries for each retriever.

A grid file is plain TOML (or YAML, with PyYAML installed), one table per retriever, with the build
parameters kept apart from the query parameters (ann-benchmarks style)::

    [hnsw]
    build = { M = [8, 16, 32], ef_construction = [200] }   # every combination is built once
    query = { ef = [10, 16, 32, 64, 128] }                 # swept on each index, no rebuild

    [[faiss]]                     # an array of tables: several build groups for one retriever,
    build = { index = ["IVF"] }   # each with the query parameters that suit it
    query = { nprobe = [1, 4, 16, 64] }

    [[faiss]]
    build = { index = ["HNSW"] }
    query = { efSearch = [16, 64, 256] }

A scalar stands for a one-element list. Parameters a group leaves out keep the retriever's defaults.
A retriever plugin ships its default grid in its spec (``RetrieverSpec(bench_grid=...)``, the same
``{build, query}`` table or list of tables, checked when the plugin registers); a ``--grid`` file
replaces the default grid of each retriever it names. A retriever without any grid is measured once,
at its defaults.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

__all__ = [
    "BuildGroup", "Grid", "default_grid", "load_grid_file", "parse_grid", "parse_groups", "resolve_grid",
]  # fmt: skip


def canonical(params: Mapping[str, Any]) -> str:
    """A stable text key for a parameter dict (sorted keys, JSON)."""
    return json.dumps(dict(params), sort_keys=True, default=str, separators=(",", ":"))


def _product(values: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(values)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(values[k] for k in keys))]


@dataclass(frozen=True)
class BuildGroup:
    """Build settings (each built once) and the query settings swept on each of them."""

    build: dict[str, list[Any]] = field(default_factory=dict)
    query: dict[str, list[Any]] = field(default_factory=dict)

    def builds(self) -> list[dict[str, Any]]:
        return _product(self.build)

    def queries(self) -> list[dict[str, Any]]:
        return _product(self.query)


@dataclass(frozen=True)
class Grid:
    """The build groups of every retriever, and where each came from (file path or ``default``)."""

    groups: dict[str, list[BuildGroup]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def settings(self, retriever: str) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """``(build params, [query params, ...])`` per distinct build setting of ``retriever``.

        Build settings that appear in several groups are built once; their query lists are merged.
        """
        merged: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        for group in self.groups.get(retriever, [BuildGroup()]):
            for build in group.builds():
                key = canonical(build)
                entry = merged.setdefault(key, (build, []))
                seen = {canonical(q) for q in entry[1]}
                for query in group.queries():
                    if canonical(query) not in seen:
                        entry[1].append(query)
                        seen.add(canonical(query))
        yield from merged.values()

    def cell_count(self, retriever: str) -> int:
        return sum(len(queries) for _, queries in self.settings(retriever))

    def to_dict(self) -> dict[str, Any]:
        return {
            name: {
                "source": self.sources.get(name, ""),
                "groups": [{"build": g.build, "query": g.query} for g in groups],
            }
            for name, groups in self.groups.items()
        }


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _check_params(where: str, retriever: str, kind: str, values: Any, spec: Any) -> dict[str, list[Any]]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise UsageError(
            f"{where}: [{retriever}] {kind} must be a table of parameter = [values], got {values!r}"
        )
    out: dict[str, list[Any]] = {}
    own = dict(spec.build_params if kind == "build" else spec.query_params) if spec is not None else None
    other = dict(spec.query_params if kind == "build" else spec.build_params) if spec is not None else None
    for key, value in values.items():
        if own is not None and key not in own:
            if other is not None and key in other:
                right = "query" if kind == "build" else "build"
                raise UsageError(
                    f"{where}: '{key}' is a {right} parameter of retriever '{retriever}';"
                    f" put it under {right}"
                )
            names = ", ".join(sorted(own)) or "none"
            raise UsageError(
                f"{where}: retriever '{retriever}' has no {kind} parameter '{key}';"
                f" its {kind} parameters are {names}"
            )
        listed = _as_list(value)
        if not listed:
            raise UsageError(f"{where}: [{retriever}] {kind}.{key} is an empty list; give at least one value")
        out[str(key)] = listed
    return out


def parse_grid(data: Mapping[str, Any], *, where: str, registry: Any = None) -> Grid:
    """Validate a parsed grid document (``{retriever: {build, query} | [{build, query}, ...]}``).

    With a ``registry``, parameter names are checked against each retriever's spec; retrievers the
    registry does not know are rejected with did-you-mean.
    """
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: a grid must be a table of retrievers, got {type(data).__name__}")
    groups: dict[str, list[BuildGroup]] = {}
    for name, body in data.items():
        spec = registry.retriever(str(name)) if registry is not None else None
        groups[str(name)] = parse_groups(str(name), body, where=where, spec=spec)
    return Grid(groups=groups, sources={name: where for name in groups})


def parse_groups(name: str, body: Any, *, where: str, spec: Any = None) -> list[BuildGroup]:
    """Validate the grid of one retriever: a ``{build, query}`` table (or BuildGroup), or a list of them.

    With a ``spec`` (a :class:`~zoo.specs.RetrieverSpec`), every parameter must be one of its build
    or query parameters, on the right side.
    """
    entries = list(body) if isinstance(body, (list, tuple)) else [body]
    if not entries:
        raise UsageError(f"{where}: [{name}] is an empty list; give at least one {{build, query}} table")
    parsed = []
    for entry in entries:
        if isinstance(entry, BuildGroup):  # already parsed (e.g. a spec copied with dataclasses.replace)
            entry = {"build": entry.build, "query": entry.query}
        if not isinstance(entry, Mapping):
            raise UsageError(f"{where}: [{name}] must be a table with 'build' and/or 'query', got {entry!r}")
        unknown = sorted(set(entry) - {"build", "query"})
        if unknown:
            raise UsageError(
                f"{where}: [{name}] has {', '.join(map(repr, unknown))};"
                " a grid entry holds only 'build' and 'query' tables (e.g. build = { M = [16, 32] })"
            )
        parsed.append(
            BuildGroup(
                build=_check_params(where, name, "build", entry.get("build"), spec),
                query=_check_params(where, name, "query", entry.get("query"), spec),
            )
        )
    return parsed


def load_grid_file(path: str | Path, *, registry: Any = None) -> Grid:
    """Read and validate a grid file (``.toml``, ``.yaml`` / ``.yml`` or ``.json``)."""
    from zoo.io import read_settings_file

    path = Path(path)
    return parse_grid(read_settings_file(path, "--grid"), where=str(path), registry=registry)


def default_grid(name: str, *, registry: Any = None) -> Grid:
    """The default grid retriever ``name``'s plugin ships (``RetrieverSpec.bench_grid``); empty when none.

    ``registry`` defaults to :func:`zoo.registry.default_registry`.
    """
    if registry is None:
        from zoo.registry import default_registry

        registry = default_registry()
    spec = registry.retriever(name)
    if spec.bench_grid is None:
        return Grid()
    return Grid(groups={name: list(spec.bench_grid)}, sources={name: f"default grid of {name}"})


def resolve_grid(retrievers: list[str], grid_file: str | Path | None, *, registry: Any = None) -> Grid:
    """The grid for ``retrievers``: each taken from ``grid_file`` when it names it, else its default.

    Settings in ``grid_file`` for retrievers not in ``retrievers`` are ignored (one file can hold the
    grids of every backend).
    """
    given = load_grid_file(grid_file, registry=registry) if grid_file is not None else Grid()
    groups: dict[str, list[BuildGroup]] = {}
    sources: dict[str, str] = {}
    for name in retrievers:
        if name in given.groups:
            groups[name], sources[name] = given.groups[name], given.sources[name]
            continue
        default = default_grid(name, registry=registry)
        if name in default.groups:
            groups[name], sources[name] = default.groups[name], default.sources[name]
        else:
            groups[name], sources[name] = [BuildGroup()], "retriever defaults"
    return Grid(groups=groups, sources=sources)
