"""``zoo plugin init NAME --kind model|retriever|dataset``: write a complete plugin package.

The package is pip-installable as it is: ``pyproject.toml`` with the ``recall_zoo`` entry point and a
compatible ``recall-zoo`` range, the hookimpl module, a working minimal implementation (a two-tower
model that trains, a brute-force retriever that answers, a CSV dataset that loads), tests that
subclass recall-zoo's conformance suites, and a README. The files come from
``zoo_cli/templates/plugin/`` (``common/`` plus one folder per kind); ``{{key}}`` placeholders are
filled in and a ``__module__`` path part becomes the import package's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from zoo import __version__
from zoo.errors import UsageError
from zoo.specs import NAME_PATTERN
from zoo_cli.output import handle_errors, stdout

if TYPE_CHECKING:  # pragma: no cover
    from importlib.resources.abc import Traversable

KINDS = ("model", "retriever", "dataset")
TEMPLATE_SUFFIX = ".tmpl"
MODULE_PLACEHOLDER = "__module__"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

app = typer.Typer(help="Create plugin packages (models, retrievers, datasets).", no_args_is_help=True)


def zoo_requirement(version: str = __version__) -> str:
    """The recall-zoo range a new plugin declares: this release up to the next breaking one
    (the next minor before 1.0, the next major after)."""
    from packaging.version import Version

    v = Version(version)
    if v.major == 0:
        return f"recall-zoo>={v.major}.{v.minor},<{v.major}.{v.minor + 1}"
    return f"recall-zoo>={v.major}.{v.minor},<{v.major + 1}"


def _camel(name: str) -> str:
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)
    return camel if camel[:1].isalpha() else f"Zoo{camel}"


_KIND_VALUES = {
    "model": {
        "summary": "A tiny two-tower recall model over id embeddings, as a recall-zoo plugin.",
        "impl_file": "model.py",
        "impl_what": "the RecallModel subclass (torch)",
        "dependencies": "",
        "list_command": "zoo models                  # lists {name}",
        "usage": (
            "zoo run {name} --retriever hnsw\nzoo run {name} --param embed_dim=64 --epochs 20 --device cuda"
        ),
    },
    "retriever": {
        "summary": "A brute-force (numpy) retrieval backend, as a recall-zoo plugin.",
        "impl_file": "index.py",
        "impl_what": "the Retriever subclass (numpy)",
        "dependencies": ', "numpy>=1.24"',
        "list_command": "zoo retrievers              # lists {name}",
        "usage": (
            "zoo run dssm --retriever {name}\n"
            "zoo run dssm --retriever {name} --param retriever.chunk_size=256"
        ),
    },
    "dataset": {
        "summary": "An interaction-log dataset read from interactions.csv, as a recall-zoo plugin.",
        "impl_file": "loader.py",
        "impl_what": "the reader (pandas) and write_example()",
        "dependencies": ', "pandas>=2.0", "numpy>=1.24"',
        "list_command": "zoo datasets                # lists {name}",
        "usage": (
            "python -c \"from {module}.loader import write_example; write_example('demo')\"\n"
            "zoo run dssm --dataset {name} --data demo"
        ),
    },
}


@dataclass(frozen=True)
class PluginNames:
    """Every name a new plugin package uses, derived from the plugin name."""

    name: str  # registry and entry-point name: my-index
    kind: str
    dist: str  # distribution: zoo-my-index
    module: str  # import package: zoo_my_index
    class_name: str  # MyIndex

    @classmethod
    def from_name(cls, name: str, kind: str) -> PluginNames:
        if kind not in KINDS:
            raise UsageError(f"--kind {kind!r} must be one of {', '.join(KINDS)}")
        if not NAME_PATTERN.fullmatch(name):
            raise UsageError(
                f"plugin name {name!r} is invalid: use lowercase letters, digits, '-' or '_' and start with a"
                " letter or digit (it becomes the name in 'zoo run ...')"
            )
        dist = name.replace("_", "-") if re.match(r"zoo[-_]", name) else f"zoo-{name.replace('_', '-')}"
        return cls(name=name, kind=kind, dist=dist, module=dist.replace("-", "_"), class_name=_camel(name))

    def values(self) -> dict[str, str]:
        requirement = zoo_requirement()
        extra = {k: v.format(name=self.name, module=self.module) for k, v in _KIND_VALUES[self.kind].items()}
        extra["impl_file"] = extra["impl_file"].ljust(13)  # aligns the README's layout block
        return {
            "name": self.name,
            "kind": self.kind,
            "dist": self.dist,
            "module": self.module,
            "class_name": self.class_name,
            "zoo_version": __version__,
            "zoo_requirement": requirement,
            "description": f"recall-zoo {self.kind} plugin '{self.name}'",
            **extra,
            "dependencies": f'"{requirement}"{extra["dependencies"]}',
        }


def _walk(folder: Traversable, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            yield from _walk(entry, (*prefix, entry.name))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            yield (*prefix, entry.name[: -len(TEMPLATE_SUFFIX)]), entry


def _fill(text: str, values: dict[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:  # a template bug, not a user error
            raise KeyError(f"template {where} uses unknown placeholder {{{{{key}}}}}")
        return values[key]

    return PLACEHOLDER.sub(replace, text)


def render_files(names: PluginNames) -> dict[Path, str]:
    """Relative path -> contents of every file of the new package."""
    root = files("zoo_cli") / "templates" / "plugin"
    values = names.values()
    out: dict[Path, str] = {}
    for folder in ("common", names.kind):
        for parts, entry in _walk(root / folder):
            renamed = [p.replace(MODULE_PLACEHOLDER, names.module) for p in parts]
            if renamed[-1] == "gitignore":
                renamed[-1] = ".gitignore"
            out[Path(*renamed)] = _fill(
                entry.read_text(encoding="utf-8"), values, f"{folder}/{'/'.join(parts)}"
            )
    return out


def create_package(name: str, kind: str, parent: str | Path = ".") -> tuple[Path, PluginNames, list[Path]]:
    """Write the package for plugin ``name`` into ``parent/name``; returns (folder, names, files)."""
    names = PluginNames.from_name(name, kind)
    target = Path(parent).expanduser() / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty; choose another NAME or --dir")
    contents = render_files(names)
    written = []
    for relative, text in contents.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(relative)
    return target, names, written


@app.command("init")
@handle_errors
def init(
    name: str = typer.Argument(
        ..., help="Plugin name, used in 'zoo run NAME' (lowercase letters, digits, '-', '_')."
    ),
    kind: str = typer.Option(
        ..., "--kind", "-k", help="What the plugin provides: model, retriever or dataset."
    ),
    directory: Path = typer.Option(Path("."), "--dir", help="Folder to create the package folder NAME/ in."),
) -> None:
    """Write a complete, pip-installable plugin package NAME/ (code, tests, README).

    Example: zoo plugin init my-index --kind retriever && pip install ./my-index
    """
    target, names, written = create_package(name, kind, directory)
    stdout.print(
        f"created {target}/: {kind} plugin '{names.name}' (distribution {names.dist}, package"
        f" {names.module})",
        highlight=False,
    )
    for path in sorted(written):
        stdout.print(f"  {path.as_posix()}", highlight=False)
    listing = {"model": "models", "retriever": "retrievers", "dataset": "datasets"}[kind]
    stdout.print("next:", highlight=False)
    stdout.print(f"  pip install -e {target}", highlight=False)
    stdout.print(f"  zoo {listing}", highlight=False)
    stdout.print(f"  cd {target} && pytest", highlight=False)
