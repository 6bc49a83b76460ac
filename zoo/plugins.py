"""Plugin manager: find -> filter -> load -> validate -> collect.

We do not use pluggy's ``load_setuptools_entrypoints``: it stops at the first broken plugin and
silently drops a second distribution that reuses a name. Here every plugin is loaded on its own;
a broken one becomes a :class:`PluginRecord` with status ``failed``, its reason and traceback, and
the rest keep working.

Environment:
    ZOO_LOAD_PLUGINS     comma-separated allow-list of third-party distributions (or entry-point
                         names); set but empty loads no third-party plugin. Built-ins always load.
    ZOO_DISABLE_PLUGINS  comma-separated plugin or distribution names never to load (built-ins too).
    ZOO_STRICT_PLUGINS   "1" makes any plugin failure fatal (for plugin authors' CI).
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from zoo import ENTRY_POINT_GROUP, PROJECT_NAME, __version__
from zoo.errors import PluginError
from zoo.hookspecs import HOOK_NAMES, REGISTRATION_HOOKS, ZooSpecs
from zoo.specs import SPEC_KINDS, Spec

BUILTIN_DIST = "recall-zoo"

LOADED = "loaded"
FAILED = "failed"
DISABLED = "disabled"
SKIPPED = "skipped"
INCOMPATIBLE = "incompatible"


def normalize_dist(name: str) -> str:
    """PEP 503 normalisation, so that ``Zoo_MLflow`` and ``zoo-mlflow`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _split_env(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {normalize_dist(v.strip()) for v in value.split(",") if v.strip()}


@dataclass
class PluginRecord:
    """What happened to one plugin: shown by ``zoo plugins`` and ``zoo doctor``."""

    name: str
    source: str  # "entry-point" | "path" | "object"
    dist: str = ""
    version: str = ""
    target: str = ""  # entry-point value, file path or object repr
    status: str = LOADED
    reason: str = ""
    traceback: str = ""
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    hook_errors: dict[str, str] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return normalize_dist(self.dist) == BUILTIN_DIST

    def fail(self, status: str, reason: str, tb: str = "") -> None:
        self.status = status
        self.reason = " ".join(reason.split())
        self.traceback = tb

    @property
    def display_status(self) -> str:
        """``loaded`` / ``failed`` / ``disabled`` / ``skipped`` / ``incompatible``, or ``error`` when a
        loaded plugin's hook raised."""
        return "error" if self.status == LOADED and self.hook_errors else self.status

    @property
    def problem(self) -> str:
        if self.status != LOADED:
            return self.reason
        return "; ".join(self.hook_errors.values())

    def warning_line(self) -> str:
        who = f"{self.name} ({self.dist} {self.version})".replace(" )", ")") if self.dist else self.name
        return f"warning: plugin {who} {self.display_status}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "dist": self.dist,
            "version": self.version,
            "target": self.target,
            "status": self.display_status,
            "reason": self.problem,
            "hooks": list(self.hooks),
            "provides": {k: list(v) for k, v in self.provides.items()},
        }


def _requires_zoo_ok(dist: metadata.Distribution) -> str:
    """Return a reason string when ``dist`` declares a recall-zoo requirement this version fails."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging ships with pip/pytest/hatchling
        return ""
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except Exception:
            continue
        if normalize_dist(req.name) != BUILTIN_DIST or req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        if req.specifier and not req.specifier.contains(__version__, prereleases=True):
            return (
                f"needs recall-zoo{req.specifier}, this is {__version__}; upgrade recall-zoo or pin an older"
                " plugin"
            )
    return ""


class PluginManager:
    """Loads plugins and collects their specs, one plugin and one hook implementation at a time.

    Args:
        entry_points: discover installed plugins from the ``recall_zoo`` entry-point group.
        paths: local plugin files (``--plugin PATH``) loaded after the entry points.
        env: environment to read ``ZOO_*`` variables from (defaults to ``os.environ``).
        strict: make any failure fatal; defaults to ``ZOO_STRICT_PLUGINS``.
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        paths: Sequence[str | os.PathLike[str]] = (),
        env: Mapping[str, str] | None = None,
        strict: bool | None = None,
    ) -> None:
        self.env = os.environ if env is None else env
        self.strict = (
            self.env.get("ZOO_STRICT_PLUGINS", "") in ("1", "true", "yes") if strict is None else strict
        )
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(ZooSpecs)
        self.records: list[PluginRecord] = []
        self._by_plugin_name: dict[str, PluginRecord] = {}
        self._collected: dict[str, list[Spec]] = {}
        if entry_points:
            self.load_entry_points()
        for path in paths:
            self.load_path(path)
        if self.strict:
            self.raise_if_failed()

    # -- find / filter / load -------------------------------------------------------------
    def _entry_points(self) -> list[metadata.EntryPoint]:
        seen: set[tuple[str, str, str]] = set()
        found = []
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.metadata["Name"] if ep.dist is not None else ""
            key = (normalize_dist(dist), ep.name, ep.value)
            if key in seen:  # editable installs can expose the same distribution twice
                continue
            seen.add(key)
            found.append(ep)
        return sorted(
            found,
            key=lambda e: (
                normalize_dist(e.dist.metadata["Name"]) != BUILTIN_DIST if e.dist else True,
                e.name,
            ),
        )

    def load_entry_points(self) -> None:
        allow = _split_env(self.env.get("ZOO_LOAD_PLUGINS"))
        deny = _split_env(self.env.get("ZOO_DISABLE_PLUGINS")) or set()
        for ep in self._entry_points():
            dist = ep.dist.metadata["Name"] if ep.dist is not None else ""
            record = PluginRecord(
                name=ep.name,
                source="entry-point",
                dist=dist,
                version=ep.dist.version if ep.dist is not None else "",
                target=ep.value,
            )
            self.records.append(record)
            names = {normalize_dist(ep.name), normalize_dist(dist)}
            if names & deny:
                record.fail(DISABLED, "blocked by ZOO_DISABLE_PLUGINS")
                continue
            if allow is not None and not record.builtin and not names & allow:
                record.fail(SKIPPED, "not in ZOO_LOAD_PLUGINS")
                continue
            if ep.dist is not None and not record.builtin:
                reason = _requires_zoo_ok(ep.dist)
                if reason:
                    record.fail(INCOMPATIBLE, reason)
                    continue
            try:
                obj = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, SystemExit included
                if isinstance(exc, KeyboardInterrupt):
                    raise
                record.fail(
                    FAILED,
                    f"import of {ep.value} failed: {type(exc).__name__}: {exc}",
                    traceback.format_exc(),
                )
                continue
            self._register(obj, record)

    def load_path(self, path: str | os.PathLike[str]) -> PluginRecord:
        """Load a plugin from a local ``.py`` file (``zoo --plugin PATH``)."""
        file = Path(path)
        record = PluginRecord(name=f"path:{file.name}", source="path", target=str(file))
        self.records.append(record)
        if not file.is_file():
            record.fail(
                FAILED,
                f"--plugin {file}: no such file; pass the path of a .py file with @zoo.hookimpl functions",
            )
            return record
        module_name = "zoo_local_plugin_" + re.sub(r"\W", "_", file.stem)
        try:
            spec = importlib.util.spec_from_file_location(module_name, file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            sys.modules.pop(module_name, None)
            record.fail(
                FAILED, f"import of {file} failed: {type(exc).__name__}: {exc}", traceback.format_exc()
            )
            return record
        self._register(module, record)
        self._collected.clear()
        return record

    def register(
        self, obj: object, name: str | None = None, *, dist: str = "", version: str = ""
    ) -> PluginRecord:
        """Register an in-memory plugin object (tests, notebooks, ``zoo.testing.register_plugin``)."""
        record = PluginRecord(
            name=name or getattr(obj, "__name__", type(obj).__name__),
            source="object",
            dist=dist,
            version=version,
            target=repr(obj),
        )
        self.records.append(record)
        self._register(obj, record)
        self._collected.clear()
        return record

    def unregister(self, name: str) -> None:
        record = self._by_plugin_name.pop(name, None)
        if record is not None:
            plugin = self.pm.get_plugin(name)
            if plugin is not None:
                self.pm.unregister(plugin)
            self.records.remove(record)
        self._collected.clear()

    # -- validate -------------------------------------------------------------------------
    def _misspelt_hooks(self, obj: object) -> list[str]:
        problems = []
        for attr in dir(obj):
            if not attr.startswith("zoo_"):
                continue
            value = getattr(obj, attr, None)
            if not callable(value):
                continue
            marked = self.pm.parse_hookimpl_opts(obj, attr) is not None
            if attr not in HOOK_NAMES:
                if marked:
                    close = difflib.get_close_matches(attr, HOOK_NAMES, n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    problems.append(f"'{attr}' is not a recall-zoo hook{hint}")
            elif not marked:
                problems.append(f"'{attr}' is not decorated with @zoo.hookimpl")
        return problems

    def _register(self, obj: object, record: PluginRecord) -> None:
        problems = self._misspelt_hooks(obj)
        if problems:
            record.fail(FAILED, "; ".join(problems) + " (see docs/plugins.md, 'Hook reference')")
            return
        plugin_name = (
            record.name if self.pm.get_plugin(record.name) is None else f"{record.dist}:{record.name}"
        )
        try:
            self.pm.register(obj, name=plugin_name)
            self.pm.check_pending()
        except Exception as exc:  # pluggy.PluginValidationError and friends
            if self.pm.get_plugin(plugin_name) is not None:
                self.pm.unregister(name=plugin_name)
            record.fail(FAILED, f"invalid hook implementation: {exc}", traceback.format_exc())
            return
        record.name = plugin_name
        record.hooks = sorted(hc.name for hc in (self.pm.get_hookcallers(obj) or []) if hc.name in HOOK_NAMES)
        self._by_plugin_name[plugin_name] = record

    # -- collect ----------------------------------------------------------------------------
    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook_name)
        # get_hookimpls() is in registration order (built-ins first); pluggy only *calls* them LIFO.
        return list(caller.get_hookimpls())

    def collect(self, kind: str) -> list[Spec]:
        """All specs of ``kind`` ("model", "retriever", "dataset"), each stamped with its provider."""
        if kind in self._collected:
            return list(self._collected[kind])
        hook_name = REGISTRATION_HOOKS[kind]
        spec_type = SPEC_KINDS[kind]
        specs: list[Spec] = []
        for impl in self._impls(hook_name):
            record = self._by_plugin_name.get(impl.plugin_name)
            if record is None or record.status != LOADED:
                continue
            try:
                returned = impl.function()
                items = list(returned or [])
                for item in items:
                    if not isinstance(item, spec_type):
                        raise PluginError(
                            f"{hook_name} returned {type(item).__name__}, expected"
                            f" zoo.specs.{spec_type.__name__}"
                        )
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                record.hook_errors[hook_name] = " ".join(
                    f"{hook_name} raised {type(exc).__name__}: {exc}".split()
                )
                record.traceback = traceback.format_exc()
                if self.strict:
                    self.raise_if_failed()
                continue
            for item in items:
                stamped = item.with_provider(plugin=record.name, dist=record.dist or record.name)
                specs.append(stamped)
                record.provides.setdefault(kind, []).append(item.name)
        self._collected[kind] = specs
        return list(specs)

    def call_safely(self, hook_name: str, **kwargs: Any) -> list[str]:
        """Call a notification hook on every plugin; a raising plugin is reported, not fatal.

        Returns one warning line per failing plugin.
        """
        return self.gather_safely(hook_name, **kwargs)[1]

    def gather_safely(self, hook_name: str, **kwargs: Any) -> tuple[list[Any], list[str]]:
        """Call ``hook_name`` on every plugin (registration order) and return (the results that are not
        None, one warning line per raising plugin); with ``ZOO_STRICT_PLUGINS`` a raise is fatal."""
        results: list[Any] = []
        warnings = []
        for impl in self._impls(hook_name):
            record = self._by_plugin_name.get(impl.plugin_name)
            try:
                result = impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                line = f"warning: plugin {impl.plugin_name} {hook_name} raised {type(exc).__name__}: {exc}"
                warnings.append(" ".join(line.split()))
                if record is not None:
                    record.hook_errors[hook_name] = " ".join(
                        f"{hook_name} raised {type(exc).__name__}: {exc}".split()
                    )
                    record.traceback = traceback.format_exc()
                if self.strict:
                    raise PluginError(line) from exc
                continue
            if result is not None:
                results.append(result)
        return results, warnings

    def hook_functions(self, hook_name: str) -> list[tuple[PluginRecord, Callable[..., Any]]]:
        """``(record, function)`` of every loaded plugin implementing ``hook_name``, in registration
        order (built-ins first): for a caller that runs the hook itself, e.g. the CLI adding commands."""
        out = []
        for impl in self._impls(hook_name):
            record = self._by_plugin_name.get(impl.plugin_name)
            if record is not None and record.status == LOADED:
                out.append((record, impl.function))
        return out

    def record_hook_error(self, record: PluginRecord, hook_name: str, exc: BaseException) -> None:
        """Remember that ``record``'s ``hook_name`` raised ``exc`` (shown by
        ``zoo plugins``/``zoo doctor``)."""
        record.hook_errors[hook_name] = " ".join(f"{hook_name} raised {type(exc).__name__}: {exc}".split())
        record.traceback = traceback.format_exc()

    # -- reporting ------------------------------------------------------------------------------
    @property
    def failures(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status in (FAILED, INCOMPATIBLE) or r.hook_errors]

    def warning_lines(self) -> list[str]:
        """One line per plugin that failed to load (shown on stderr by every command)."""
        return [r.warning_line() for r in self.failures]

    def raise_if_failed(self) -> None:
        failures = self.failures
        if failures:
            details = "; ".join(f"{r.name}: {r.problem}" for r in failures)
            raise PluginError(f"ZOO_STRICT_PLUGINS is set and {len(failures)} plugin(s) failed: {details}")
