"""Recommendations out of a ``zoo run`` folder: top-K original item ids for known and new users.

::

    recommender = Recommender.load("runs/my-run")               # model, vocabularies, items, index
    recs = recommender.recommend(["42", "7"], k=10)              # known users, by their original ids
    rec = recommender.recommend_new({"gender": "F"}, history=[1193, 661], k=10)   # a new user

Two answers for a known user, both explicit:

* ``recommend(ids)`` (the production case) reads the user's FULL stored history, every event of the
  log including the ones ``zoo run`` held out for validation and test, and (``exclude_seen``, on by
  default) never recommends an item the user already has.
* ``recommend(ids, as_evaluated=True)`` reads exactly what ``zoo run`` evaluated the user on: the
  history before their test event, and the items before it excluded when the protocol masks seen items
  (``exclude_seen`` overrides that). Its top-K is ``zoo run``'s ranking for the user.

The inputs are cut by :class:`~zoo.data.match.MatchData` itself (``batch``, ``seen_items``) over the
events the run folder stores (:mod:`zoo.data.run_store`), the users go through the tower in one call,
and the ranking is ``zoo run``'s: exact full ranking (:func:`zoo.evaluate.topk_items`, ``exact=True``)
or one query of the run's index (:func:`zoo.retrieval.filtering.query_excluding`, which merges the
interests of multi-interest models by best score).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo.errors import ModelFileError, UsageError

#: shown in a note when more values than this are dropped
_SHOWN = 5
#: known users per tower call when their vectors are computed (the chunk size of zoo run's embedding)
_EMBED_CHUNK = 4096


@dataclass
class Recommendation:
    """One user's top-K: original item ids, their scores (higher is better) and the items' raw side
    values (``{}`` per item when the dataset has none). ``user`` is the original user id (None for a
    new user); ``notes`` say what was dropped or mapped to out-of-vocabulary on the way."""

    user: Any
    items: list[Any]
    scores: list[float]
    metadata: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the user, the ranked items (rank, item_id, score, metadata) and the notes."""
        return {
            "user": self.user,
            "items": [
                {"rank": rank, "item_id": item, "score": score, "metadata": meta}
                for rank, (item, score, meta) in enumerate(
                    zip(self.items, self.scores, self.metadata, strict=True), start=1
                )
            ],
            "notes": list(self.notes),
        }


@dataclass
class NewUser:
    """A user the run never saw: side feature values by feature name (``user_id`` allowed) and the items
    they interacted with, oldest first (original ids)."""

    features: Mapping[str, Any] = field(default_factory=dict)
    history: Sequence[Any] = ()


class Recommender:
    """A run folder loaded once for recommendations (see the module docstring).

    Build it with :meth:`load`. Attributes: ``model`` (on ``device``, in eval mode), ``encoder`` (the
    vocabularies), ``schema``, ``protocol`` (its ``history_len`` and ``mask_seen``), ``item_vectors``
    (``[N, D]`` CPU, catalogue order), ``retriever`` (the run's index unless another was given).

    A known user's vector is a function of their stored events only, so with ``cache_users`` (the
    default) the tower runs once over every known user, in batches, the first time one is asked for
    (:meth:`known_user_vectors`; ``zoo serve`` does it at start-up), and answers read the kept vectors:
    ``U x D`` floats (``U x K x D`` for K interests) per view. New users always go through the tower.
    """

    def __init__(
        self,
        *,
        run_dir: Path,
        model: Any,
        encoder: Any,
        schema: Any,
        protocol: Any,
        users: Any,
        items: Any,
        retriever: Any,
        device: torch.device,
        cache_users: bool = True,
    ) -> None:
        from zoo.data.run_store import events_view

        self.run_dir = Path(run_dir)
        self.model = model
        self.encoder = encoder
        self.schema = schema
        self.protocol = protocol
        self.users = users
        self.items = items
        self.device = device
        view = functools.partial(
            events_view, encoder, schema, protocol, users.user_codes, users.indptr, users.items, users.tables
        )
        #: (MatchData, query position per stored user): each user queried after their last event
        self.full_view: tuple[Any, torch.Tensor] = view(next_event=True)
        #: (MatchData, query position per stored user): each user queried at their test event
        self.evaluated_view: tuple[Any, torch.Tensor] = view(next_event=False)
        self.catalogue = self.evaluated_view[0].catalogue  # the item codes MatchData ranks, in order
        if len(items.ids) != len(self.catalogue):
            raise ModelFileError(
                f"{self.run_dir}: items/ lists {len(items.ids)} items but the model ranks"
                f" {len(self.catalogue)}; run zoo run again"
            )
        from zoo.train.inference import embed_items

        self.item_vectors = embed_items(model, self.catalogue, device)
        self.retriever = retriever
        self._known_ids = _plain_list(encoder.vocabs["user_id"].decode(users.user_codes))
        #: original id (and its text) -> stored row: the common lookup without the vocabulary's pandas path
        self._known_row: dict[Any, int] = {}
        for row, user in enumerate(self._known_ids):
            self._known_row.setdefault(str(user), row)
            self._known_row[user] = row
        self.cache_users = bool(cache_users)
        self._cached_vectors: dict[bool, torch.Tensor] = {}  # as_evaluated -> [U, D] or [U, K, D]
        self._cached_seen: dict[bool, tuple[np.ndarray, np.ndarray]] = {}  # as_evaluated -> CSR
        self._user_row = np.full(schema.user_vocab, -1, dtype=np.int64)
        self._user_row[users.user_codes] = np.arange(users.count)
        self._item_row = np.full(schema.item_vocab, -1, dtype=np.int64)
        self._item_row[self.catalogue.numpy()] = np.arange(len(self.catalogue))

    # -- loading --------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        *,
        retriever: Any = None,
        device: Any = "cpu",
        registry: Any = None,
        cache_users: bool = True,
    ) -> Recommender:
        """Load ``run_dir`` (a ``zoo run --out`` folder): the model, the vocabularies, the stored users
        and items, the item vectors and the run's index.

        Args:
            retriever: None (the run's saved index), a retriever name (built with its defaults over
                the item vectors), or a :class:`~zoo.retrieval.Retriever` (fitted over the item vectors
                when it is empty, else used as it is: it must index the run's item codes).
            device: where the towers run (``cpu``, ``cuda``, ``auto``...).
            cache_users: keep every known user's vector after its first use (see the class docstring);
                False runs the tower for each request.
        """
        from zoo.data.encoder import FeatureEncoder
        from zoo.data.protocol import Protocol
        from zoo.data.run_store import ITEMS_DIR, USERS_DIR, read_items, read_users, run_metric
        from zoo.device import resolve_device
        from zoo.features import Schema
        from zoo.models import load_model
        from zoo.models.base import RecallModel
        from zoo.pipeline.save import INDEX_DIR, MODEL_DIR, VOCAB_FILE
        from zoo.registry import default_registry

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UsageError(f"{run_dir}: no such run folder; give the --out folder of a zoo run")
        for entry in (MODEL_DIR, USERS_DIR, ITEMS_DIR):
            if not (run_dir / entry).is_dir():
                raise ModelFileError(
                    f"{run_dir}: no {entry}/ folder; it is not a run folder of this recall-zoo version"
                    " (recommendations need model/, users/ and items/): run zoo run again"
                )
        registry = registry or default_registry()
        device = resolve_device(device)
        meta = RecallModel.read_meta(run_dir / MODEL_DIR)
        if not isinstance(meta.get("schema"), dict):
            raise ModelFileError(f"{run_dir / MODEL_DIR}: model.json has no schema; run zoo run again")
        schema_fields = dict(meta["schema"])
        schema_fields["item_multivalue"] = tuple(schema_fields.get("item_multivalue", ()))
        schema = Schema(**schema_fields)
        model = load_model(run_dir / MODEL_DIR, map_location=device, registry=registry).eval()
        encoder = FeatureEncoder.load(run_dir / MODEL_DIR / VOCAB_FILE)
        users = read_users(run_dir / USERS_DIR)
        if users.history_len != schema.history_len:
            raise ModelFileError(f"{run_dir / USERS_DIR}: history length differs from the model's schema")
        protocol = Protocol(name=users.protocol, mask_seen=users.mask_seen, history_len=users.history_len)
        recommender = cls(
            run_dir=run_dir,
            model=model,
            encoder=encoder,
            schema=schema,
            protocol=protocol,
            users=users,
            items=read_items(run_dir / ITEMS_DIR),
            retriever=None,
            device=device,
            cache_users=cache_users,
        )
        if retriever is None:
            retriever = _load_index(run_dir / INDEX_DIR, device, registry)
        else:
            retriever = recommender._fitted(retriever, registry, run_metric(run_dir))
        if len(retriever) != len(recommender.catalogue):
            raise ModelFileError(
                f"{run_dir}: the index holds {len(retriever)} items but the model ranks"
                f" {len(recommender.catalogue)}; rebuild it with zoo run"
            )
        recommender.retriever = retriever
        return recommender

    def _fitted(self, retriever: Any, registry: Any, metric: str) -> Any:
        if isinstance(retriever, str):
            spec = registry.retriever(retriever)
            retriever = registry.create_retriever(spec.qualified_name, metric=metric)
        if getattr(retriever, "dim", None) is None:
            retriever.fit(self.item_matrix(), ids=self.catalogue.numpy())
        return retriever

    # -- what the run knows -----------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        """Known users (every user of the run's log)."""
        return self.users.count

    @property
    def num_items(self) -> int:
        """Items that can be recommended (the catalogue)."""
        return int(len(self.catalogue))

    @property
    def user_ids(self) -> list[Any]:
        """The known users' original ids, in stored order."""
        return list(self._known_ids)

    @property
    def item_ids(self) -> list[Any]:
        """The catalogue's original item ids, in catalogue order (the rows of :attr:`item_vectors`)."""
        return list(self.items.ids)

    @property
    def feature_names(self) -> list[str]:
        """The names :meth:`recommend_new` accepts in ``features``: ``user_id`` and the user side
        columns of the dataset."""
        return [self.schema.user_id, *self.encoder.user_columns]

    def item_matrix(self) -> np.ndarray:
        """The item vectors as a contiguous float32 array (what a retriever is fitted on)."""
        return np.ascontiguousarray(self.item_vectors.numpy(), dtype=np.float32)

    def item_metadata(self, item_ids: Iterable[Any]) -> list[dict[str, Any]]:
        """The raw side values of items given by original id (UsageError for an unknown id)."""
        ids = list(item_ids)
        codes = _encode(self.encoder.vocabs["item_id"], ids)
        rows = self._item_row[codes]
        unknown = [i for i, r in zip(ids, rows, strict=True) if r < 0]
        if unknown:
            raise UsageError(f"item {unknown[0]!r} is not in the run's catalogue ({self.num_items} items)")
        return self.items.metadata(rows)

    # -- known users --------------------------------------------------------------------------------------
    def recommend(
        self,
        user_ids: Any,
        k: int = 10,
        *,
        exclude_seen: bool | None = None,
        allow: Iterable[Any] | None = None,
        exclude: Iterable[Any] | None = None,
        as_evaluated: bool = False,
        exact: bool = False,
    ) -> list[Recommendation]:
        """Top-``k`` items for known users given by their ORIGINAL ids (one id or a list), in one tower
        call and one index query.

        Args:
            k: items per user, 1 to the catalogue size.
            exclude_seen: leave out the items the user already has (default: True; with
                ``as_evaluated``, as the run's protocol did).
            allow: only these items (original ids) may be recommended; they are ranked exactly.
            exclude: items (original ids) never to recommend.
            as_evaluated: answer from the input and exclusions ``zoo run`` evaluated the user on (the
                history before their test event) instead of their full history.
            exact: exact full ranking over the catalogue instead of the index.
        """
        ids = [user_ids] if _is_scalar(user_ids) else list(user_ids)
        k = self._check_k(k)
        if not ids:
            return []
        rows = self._user_rows(ids)
        if exclude_seen is None:
            exclude_seen = bool(self.protocol.mask_seen) if as_evaluated else True
        seen = self._known_seen(rows, as_evaluated) if exclude_seen else None
        users = [self._known_ids[int(row)] for row in rows]  # the ids as the run stores them
        vectors = self._known_vectors(rows, as_evaluated)
        return self._recommend(vectors, seen, users, k, allow, exclude, exact)

    def user_vectors(self, user_ids: Any, *, as_evaluated: bool = False) -> np.ndarray:
        """The tower's vectors of known users (``[U, D]``, or ``[U, K, D]`` for K interests)."""
        ids = [user_ids] if _is_scalar(user_ids) else list(user_ids)
        return self._known_vectors(self._user_rows(ids), as_evaluated).numpy()

    def known_user_vectors(self, *, as_evaluated: bool = False) -> torch.Tensor:
        """Every known user's vector in stored order (``[U, D]`` or ``[U, K, D]``, CPU), from the tower
        in batches on the first call and kept (``cache_users``); ``as_evaluated`` as :meth:`recommend`."""
        vectors = self._cached_vectors.get(as_evaluated)
        if vectors is None:
            view, positions = self.evaluated_view if as_evaluated else self.full_view
            step = _EMBED_CHUNK
            chunks = [
                self._embed(view.batch(positions[s : s + step])) for s in range(0, len(positions), step)
            ]
            vectors = torch.cat(chunks) if chunks else torch.empty(0)
            if self.cache_users:
                self._cached_vectors[as_evaluated] = vectors
        return vectors

    def _known_seen(self, rows: np.ndarray, as_evaluated: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR of the catalogue rows the stored users at ``rows`` had (``MatchData.seen_items``), cut
        from every known user's, kept with ``cache_users``."""
        view, positions = self.evaluated_view if as_evaluated else self.full_view
        if not self.cache_users:
            return view.seen_items(positions[torch.from_numpy(rows)])
        cached = self._cached_seen.get(as_evaluated)
        if cached is None:
            indptr, seen = view.seen_items(positions)
            cached = self._cached_seen[as_evaluated] = (indptr.numpy(), seen.numpy())
        indptr, seen = cached
        starts, ends = indptr[rows], indptr[rows + 1]
        if len(rows) == 1:
            values = seen[starts[0] : ends[0]]
        else:
            values = np.concatenate([seen[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)])
        counts = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        return torch.from_numpy(counts), torch.from_numpy(values)

    def _known_vectors(self, rows: np.ndarray, as_evaluated: bool) -> torch.Tensor:
        """Vectors of the stored users at ``rows``: kept ones with ``cache_users``, else from the tower."""
        if self.cache_users:
            return self.known_user_vectors(as_evaluated=as_evaluated)[torch.from_numpy(rows)]
        view, positions = self.evaluated_view if as_evaluated else self.full_view
        return self._embed(view.batch(positions[torch.from_numpy(rows)]))

    # -- new users ------------------------------------------------------------------------------------
    def recommend_new(
        self,
        features: Mapping[str, Any] | None = None,
        history: Sequence[Any] = (),
        k: int = 10,
        **options: Any,
    ) -> Recommendation:
        """Top-``k`` items for a user the run never saw (cold start): ``features`` by name (see
        :attr:`feature_names`; a value never seen in training maps to out-of-vocabulary, id 1) and the
        items they had, oldest first (items not in the catalogue are dropped with a note). Options as
        :meth:`recommend_new_batch`."""
        return self.recommend_new_batch([NewUser(dict(features or {}), list(history))], k, **options)[0]

    def recommend_new_batch(
        self,
        users: Sequence[NewUser | Mapping[str, Any]],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        allow: Iterable[Any] | None = None,
        exclude: Iterable[Any] | None = None,
        exact: bool = False,
    ) -> list[Recommendation]:
        """:meth:`recommend_new` for many new users at once (one tower call, one index query); each user
        a :class:`NewUser` or a mapping with ``features`` and ``history``. ``exclude_seen`` leaves out
        the items of the given history."""
        from zoo.data.encoder import FIRST_CODE, OOV
        from zoo.data.run_store import events_view

        k = self._check_k(k)
        requests = [_new_user(u) for u in users]
        if not requests:
            return []
        notes: list[list[str]] = [[] for _ in requests]
        user_codes = np.full(len(requests), OOV, dtype=np.int64)
        columns: dict[str, np.ndarray] = {}
        histories = []
        for i, request in enumerate(requests):
            for name, value in request.features.items():
                column, vocab_key = self._feature(name)
                code = int(_encode(self.encoder.vocabs[vocab_key], [value])[0])
                if code == OOV:
                    notes[i].append(
                        f"feature '{name}': value {value!r} was never seen in training (OOV, id 1)"
                    )
                if column == self.schema.user_id:
                    user_codes[i] = code
                else:
                    columns.setdefault(column, np.full(len(requests), -1, dtype=np.int64))[i] = code
            codes = _encode(self.encoder.vocabs["item_id"], list(request.history))
            dropped = [item for item, c in zip(request.history, codes, strict=True) if c < FIRST_CODE]
            if dropped:
                shown = ", ".join(repr(d) for d in dropped[:_SHOWN]) + (
                    ", ..." if len(dropped) > _SHOWN else ""
                )
                notes[i].append(f"history: dropped {len(dropped)} item(s) not in the catalogue ({shown})")
            histories.append(codes[codes >= FIRST_CODE])
        indptr = np.concatenate([[0], np.cumsum([len(h) for h in histories])]).astype(np.int64)
        items = np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, np.int64)
        view, positions = events_view(
            self.encoder,
            self.schema,
            self.protocol,
            user_codes,
            indptr,
            items,
            self.users.tables,
            next_event=True,
        )
        batch = view.batch(positions)
        for column, values in columns.items():  # given features replace the known user's stored ones
            given = torch.from_numpy(values)
            batch[column] = torch.where(given >= 0, given, batch[column])
        seen = view.seen_items(positions) if exclude_seen else None
        recs = self._recommend(self._embed(batch), seen, [None] * len(requests), k, allow, exclude, exact)
        for rec, extra in zip(recs, notes, strict=True):
            rec.notes[:0] = extra
        return recs

    # -- ranking --------------------------------------------------------------------------------------
    def _embed(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        from zoo.train.inference import embed_users

        return embed_users(self.model, batch, self.device)

    def _recommend(
        self,
        vectors: torch.Tensor,
        seen: tuple[torch.Tensor, torch.Tensor] | None,
        users: list[Any],
        k: int,
        allow: Iterable[Any] | None,
        exclude: Iterable[Any] | None,
        exact: bool,
    ) -> list[Recommendation]:
        """Rank the catalogue for users' ``vectors`` (``seen``: CSR of catalogue rows to leave out)."""
        from zoo.evaluate import topk_items
        from zoo.retrieval.filtering import query_excluding

        notes: list[str] = []
        extra = self._item_rows(exclude, "exclude", notes) if exclude is not None else np.zeros(0, np.int64)
        mask = _union(len(users), seen, extra)
        if allow is not None:
            allowed = np.unique(self._item_rows(allow, "allow", notes))
            position = np.full(self.num_items, -1, dtype=np.int64)
            position[allowed] = np.arange(len(allowed))
            if mask is not None:
                kept = position[mask[1]]
                owner = np.repeat(np.arange(len(users)), np.diff(mask[0]))[kept >= 0]
                mask = (_indptr(owner, len(users)), kept[kept >= 0])
            top, scores = topk_items(
                vectors,
                self.item_vectors[torch.from_numpy(allowed)],
                min(k, len(allowed)),
                exclude=None if mask is None else tuple(torch.from_numpy(a) for a in mask),
                device=self.device,
            )
            top = top.numpy()
            rows = np.where(top >= 0, allowed[np.clip(top, 0, None)], -1) if len(allowed) else top
            scores = scores.numpy()
        elif exact or self.retriever is None:
            top, scores = topk_items(
                vectors,
                self.item_vectors,
                k,
                exclude=None if mask is None else tuple(torch.from_numpy(a) for a in mask),
                device=self.device,
            )
            rows, scores = top.numpy(), scores.numpy()
        else:
            matrix = np.ascontiguousarray(vectors.numpy(), dtype=np.float32)
            catalogue = self.catalogue.numpy()
            ids, scores = query_excluding(
                self.retriever, matrix, k, None if mask is None else (mask[0], catalogue[mask[1]])
            )
            rows = np.where(ids >= 0, self._item_row[np.clip(ids, 0, None)], -1)
        return [self._answer(user, r, s, notes) for user, r, s in zip(users, rows, scores, strict=True)]

    def _answer(self, user: Any, rows: np.ndarray, scores: np.ndarray, notes: list[str]) -> Recommendation:
        keep = rows >= 0
        rows, scores = rows[keep], scores[keep]
        return Recommendation(
            user=user,
            items=[self.items.ids[int(r)] for r in rows],
            scores=[float(s) for s in scores],
            metadata=self.items.metadata(rows),
            notes=list(notes),
        )

    # -- checks ---------------------------------------------------------------------------------------
    def _check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= self.num_items:
            raise UsageError(
                f"k must be an integer from 1 to {self.num_items} (the catalogue size), got {k!r}"
            )
        return int(k)

    def _user_rows(self, ids: list[Any]) -> np.ndarray:
        known = self._known_row
        rows = [known.get(u, -1) if type(u) in (int, str) else -1 for u in ids]  # exact types: not bool
        if -1 not in rows:
            return np.asarray(rows, dtype=np.int64)
        codes = _encode(self.encoder.vocabs["user_id"], ids)
        rows = self._user_row[codes]
        for user, row in zip(ids, rows, strict=True):
            if row < 0:
                raise UsageError(
                    f"user {user!r} is not a known user of this run ({self.num_users} users); check the id,"
                    " or recommend for a new user with recommend_new (features and history)"
                )
        return rows

    def _item_rows(self, item_ids: Iterable[Any], option: str, notes: list[str]) -> np.ndarray:
        ids = [item_ids] if _is_scalar(item_ids) else list(item_ids)
        codes = _encode(self.encoder.vocabs["item_id"], ids)
        rows = self._item_row[codes]
        unknown = [i for i, r in zip(ids, rows, strict=True) if r < 0]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:_SHOWN]) + (", ..." if len(unknown) > _SHOWN else "")
            notes.append(f"{option}: ignored {len(unknown)} item(s) not in the catalogue ({shown})")
        return rows[rows >= 0]

    def _feature(self, name: Any) -> tuple[str, str]:
        """(batch column, vocabulary key) of a user feature given by its batch or dataset column name."""
        if name == self.schema.user_id:
            return self.schema.user_id, "user_id"
        from zoo.data.run_store import user_columns

        for column, batch_name in user_columns(self.encoder, self.schema.user_side).items():
            if name in (column, batch_name):
                return batch_name, f"user:{column}"
        raise UsageError(
            f"unknown user feature {name!r}; this run's user features are {', '.join(self.feature_names)}"
        )


# -- helpers ---------------------------------------------------------------------------------------------
def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, int, float, np.generic)) or value is None


def _plain_list(values: np.ndarray) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values]


def _coerce(value: Any, index: pd.Index) -> Any:
    """``value`` in the type of a vocabulary's ids: ``"42"`` for integer ids, ``42`` for string ids."""
    if isinstance(value, str) and pd.api.types.is_integer_dtype(index.dtype):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and index.dtype == object:
        return str(value)
    return value


def _encode(vocab: Any, values: list[Any]) -> np.ndarray:
    """Codes of raw ``values`` (accepting ids typed as text from a command line); missing -> 0, unknown
    -> 1 (out-of-vocabulary)."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    coerced = [_coerce(v, vocab.values) for v in values]
    try:
        return vocab.encode(pd.Series(coerced, dtype=object))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot look up {values[:_SHOWN]!r}: {exc}") from None


def _indptr(owner: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=rows))]).astype(np.int64)


def _union(
    users: int, seen: tuple[torch.Tensor, torch.Tensor] | None, extra: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """CSR of catalogue rows per user: the user's ``seen`` rows plus the ``extra`` rows for everyone."""
    if seen is None and not len(extra):
        return None
    if seen is None:
        indptr, rows = np.zeros(users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    else:
        indptr, rows = (t.numpy().astype(np.int64) for t in seen)
    if not len(extra):
        return indptr, rows
    owner = np.concatenate(
        [np.repeat(np.arange(users), np.diff(indptr)), np.repeat(np.arange(users), len(extra))]
    )
    values = np.concatenate([rows, np.tile(extra, users)])
    order = np.argsort(owner, kind="stable")
    return _indptr(owner, users), values[order]


def _new_user(request: Any) -> NewUser:
    if isinstance(request, NewUser):
        return request
    if isinstance(request, Mapping) and set(request) <= {"features", "history"}:
        features = request.get("features") or {}
        history = request.get("history") or ()
        if isinstance(features, Mapping) and not _is_scalar(history):
            return NewUser(dict(features), list(history))
    raise UsageError(
        "a new user is a NewUser or a mapping {'features': {name: value}, 'history': [item ids]}, got"
        f" {request!r}"
    )


def _load_index(folder: Path, device: torch.device, registry: Any) -> Any:
    """The run's saved index, through the plugin registry (on ``device`` where the backend can move)."""
    from zoo.retrieval.base import Retriever

    header = Retriever.read_header(folder)
    cls = registry.retriever(str(header.get("backend"))).load()
    if "device" in inspect.signature(cls.load).parameters:
        return cls.load(folder, device=str(device))
    return cls.load(folder)
