"""Feature encoding: raw ids and side values -> dense integer codes, fit on the training part only.

Code ``0`` is padding / missing, ``1`` is out-of-vocabulary (a value never seen in training), real
values start at ``2``. Vocabularies are saved as JSON next to the model so that new data can be
encoded exactly as the training data was.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import DataError, ModelFileError

PAD = 0
OOV = 1
FIRST_CODE = 2


@dataclass
class Vocabulary:
    """The sorted distinct training values of one column."""

    values: pd.Index

    @classmethod
    def fit(cls, values: Iterable[Any]) -> Vocabulary:
        series = pd.Series(values)
        uniques = pd.unique(series.dropna())
        with contextlib.suppress(TypeError):  # mixed types: keep first-seen order
            uniques = np.sort(uniques)
        return cls(pd.Index(uniques))

    @property
    def size(self) -> int:
        """Number of codes including padding and OOV."""
        return len(self.values) + FIRST_CODE

    def encode(self, raw: Any) -> np.ndarray:
        """Codes for ``raw`` values: missing -> 0, unseen -> 1."""
        series = pd.Series(raw)
        codes = self.values.get_indexer(series).astype(np.int64)
        out = np.where(codes >= 0, codes + FIRST_CODE, OOV)
        out[series.isna().to_numpy()] = PAD
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Raw values for codes >= 2 (padding and OOV decode to None)."""
        codes = np.asarray(codes)
        out = np.full(codes.shape, None, dtype=object)
        valid = codes >= FIRST_CODE
        out[valid] = self.values.to_numpy()[codes[valid] - FIRST_CODE]
        return out

    def to_json(self) -> list[Any]:
        return [v.item() if hasattr(v, "item") else v for v in self.values.to_numpy()]


@dataclass
class FeatureEncoder:
    """Vocabularies of ``user_id``, ``item_id`` and every side column."""

    vocabs: dict[str, Vocabulary] = field(default_factory=dict)
    item_multivalue: dict[str, str] = field(default_factory=dict)
    user_columns: list[str] = field(default_factory=list)
    item_columns: list[str] = field(default_factory=list)

    @classmethod
    def fit(
        cls,
        train_users: np.ndarray,
        train_items: np.ndarray,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
        item_multivalue: dict[str, str] | None = None,
    ) -> FeatureEncoder:
        """Fit on the training part: ids seen in training, side values of training users and items."""
        encoder = cls(item_multivalue=dict(item_multivalue or {}))
        encoder.vocabs["user_id"] = Vocabulary.fit(train_users)
        encoder.vocabs["item_id"] = Vocabulary.fit(train_items)
        if users is not None:
            known = users[users["user_id"].isin(encoder.vocabs["user_id"].values)]
            for col in users.columns:
                if col == "user_id":
                    continue
                encoder.vocabs[f"user:{col}"] = Vocabulary.fit(known[col])
                encoder.user_columns.append(col)
        if items is not None:
            known = items[items["item_id"].isin(encoder.vocabs["item_id"].values)]
            for col in items.columns:
                if col == "item_id":
                    continue
                values = known[col]
                if col in encoder.item_multivalue:
                    values = _split_tokens(values, encoder.item_multivalue[col])[1]
                encoder.vocabs[f"item:{col}"] = Vocabulary.fit(values)
                encoder.item_columns.append(col)
        return encoder

    # -- ids ----------------------------------------------------------------------------------------
    def encode_users(self, raw: Any) -> np.ndarray:
        return self.vocabs["user_id"].encode(raw)

    def encode_items(self, raw: Any) -> np.ndarray:
        return self.vocabs["item_id"].encode(raw)

    @property
    def user_vocab(self) -> int:
        return self.vocabs["user_id"].size

    @property
    def item_vocab(self) -> int:
        return self.vocabs["item_id"].size

    # -- side tables ----------------------------------------------------------------------------------
    def user_table(self, users: pd.DataFrame | None) -> dict[str, np.ndarray]:
        """For each user side column, an array indexed by user code (0 where unknown)."""
        return self._side_table(users, "user_id", "user", self.user_columns, self.user_vocab)

    def item_table(self, items: pd.DataFrame | None) -> dict[str, np.ndarray]:
        """For each item side column, an array (or [items, max_tokens] matrix) indexed by item code."""
        return self._side_table(items, "item_id", "item", self.item_columns, self.item_vocab)

    def _side_table(
        self, table: pd.DataFrame | None, key: str, prefix: str, columns: list[str], size: int
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if table is None or not columns:
            return out
        codes = self.vocabs[key].encode(table[key])
        rows = codes >= FIRST_CODE
        codes = codes[rows]
        table = table[rows]
        for col in columns:
            vocab = self.vocabs[f"{prefix}:{col}"]
            sep = self.item_multivalue.get(col) if prefix == "item" else None
            if sep is not None:
                owner, tokens = _split_tokens(table[col], sep)
                token_codes = vocab.encode(tokens)
                position = pd.Series(owner).groupby(owner).cumcount().to_numpy()
                width = max(1, int(position.max()) + 1) if len(position) else 1
                matrix = np.zeros((size, width), dtype=np.int64)
                matrix[codes[owner], position] = token_codes
                out[col] = matrix
            else:
                column = np.zeros(size, dtype=np.int64)
                column[codes] = vocab.encode(table[col])
                out[col] = column
        return out

    def side_vocab_sizes(self, prefix: str) -> dict[str, int]:
        columns = self.user_columns if prefix == "user" else self.item_columns
        return {col: self.vocabs[f"{prefix}:{col}"].size for col in columns}

    # -- persistence ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "vocabs": {name: vocab.to_json() for name, vocab in self.vocabs.items()},
            "item_multivalue": self.item_multivalue,
            "user_columns": self.user_columns,
            "item_columns": self.item_columns,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        return cls(
            vocabs={name: Vocabulary(pd.Index(values)) for name, values in data["vocabs"].items()},
            item_multivalue=dict(data.get("item_multivalue", {})),
            user_columns=list(data.get("user_columns", [])),
            item_columns=list(data.get("item_columns", [])),
        )

    def save(self, path: str | Path) -> None:
        from zoo.io import atomic_write_json

        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> FeatureEncoder:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ModelFileError(f"{path}: vocabulary file not found") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{path}: unreadable vocabulary file ({exc})") from None


def _split_tokens(values: pd.Series, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Split a multi-valued string column: (owner row index per token, tokens)."""
    values = values.reset_index(drop=True)
    if not (pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)):
        raise DataError(f"multi-valued column '{values.name}' must hold strings joined by {sep!r}")
    exploded = values.fillna("").astype(str).str.split(sep, regex=False).explode()
    exploded = exploded[exploded.str.len() > 0]
    return exploded.index.to_numpy(dtype=np.int64), exploded.to_numpy(dtype=object)
