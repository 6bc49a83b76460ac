"""RunReport: everything one ``zoo run`` measured, as plain JSON-ready data (no torch import)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ModelFileError

REPORT_FILE = "run.json"
REPORT_SCHEMA = 1


@dataclass
class RunReport:
    """The result of one run: config, protocol card, data, training, metrics, retriever, timings.

    ``metrics`` maps an evaluator (``exact``, ``retriever``, ``popularity``) to its metrics
    (``hitrate@10`` ...). ``retriever`` holds the backend's settings and its recall against exact search.
    """

    config: dict[str, Any]
    protocol: dict[str, Any]
    data: dict[str, Any]
    training: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    retriever: dict[str, Any]
    timings: dict[str, float]
    versions: dict[str, str]
    device: dict[str, Any]
    created: str = ""
    run_dir: str | None = None
    warnings: list[str] = field(default_factory=list)
    schema: int = REPORT_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunReport:
        path = Path(path)
        if path.is_dir():
            path = path / REPORT_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ModelFileError(f"{path}: no run report here") from None
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: unreadable run report ({exc})") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
