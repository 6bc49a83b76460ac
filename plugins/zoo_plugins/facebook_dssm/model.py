"""FaceBookDSSM: the two-tower model of Facebook's Embedding-Based Retrieval, trained pair-wise.

Huang et al., Embedding-based Retrieval in Facebook Search (KDD 2020): a query (user) tower and a
document (item) tower, cosine similarity, and a triplet loss that ranks each positive above a sampled
negative. The towers are DSSM's (:class:`zoo_plugins.dssm.model.DSSM`: MLPs over feature embeddings,
L2-normalised); what this model adds is Torch-RecHub's constructor and the negatives' own columns::

    FaceBookDSSM(user_features, pos_item_features, neg_item_features,
                 user_params={"dims": [256, 128, 64, 32]}, item_params={"dims": [256, 128, 64, 32]},
                 temperature=0.02)

``neg_item_features`` name the batch columns that describe each row's negative item, in the order of
``pos_item_features`` (``neg_items`` for ``movie_id``, ``neg_cate`` for ``cate_id``). The negative's id
column is the trainer's negatives (``MatchTrainer(mode=1)`` scores every row's positive against it with
BPR or hinge); its side columns fill the model's item table, so negatives get their own side features.
Negatives are embedded by the item tower itself, with the positives' tables.

Differences from the reference implementation: the temperature divides the logits (it was stored and
never applied); item vectors are normalised at inference too (they were normalised only in training);
negatives share the item tower's embedding tables (``neg_items`` had a table of its own, so negatives
never moved the item embeddings); padding is never pooled and the last tower layer is linear.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from zoo.errors import UsageError
from zoo.features import Feature, features_from_dicts, features_to_dicts
from zoo.models.base import Batch
from zoo_plugins.dssm.model import DSSM


def _scalar(value: Any) -> Any:
    """A numpy or torch scalar as a plain number (for ``json.dumps``); anything else is not JSON."""
    if callable(getattr(value, "item", None)) and getattr(value, "ndim", None) == 0:
        return value.item()
    raise TypeError(type(value).__name__)


def dssm_settings(
    model: DSSM,
    user_params: Mapping[str, Any] | None,
    item_params: Mapping[str, Any] | None,
    embedding_init_std: float,
) -> dict[str, Any]:
    """The DSSM constructor's arguments of ``model`` besides its features (what ``get_config`` saves)."""
    return {
        "user_params": None if user_params is None else dict(user_params),
        "item_params": None if item_params is None else dict(item_params),
        "temperature": model.temperature,
        "embedding_init_std": float(embedding_init_std),
        "recent_history": model.recent_history,
    }


class FeatureListArguments:
    """Saving for a model whose constructor takes feature lists under names of its own (Torch-RecHub's
    ``pos_item_features``, ``sample_weight_feature``...), which the recorded-arguments config of
    :class:`~zoo.models.RecallModel` cannot write: ``get_config`` writes :meth:`feature_lists` (one
    entry per name in ``feature_arguments``) as feature dicts plus the settings given to
    :meth:`keep_settings`; ``from_config`` reads them back.
    """

    #: the constructor's feature-list arguments
    feature_arguments: ClassVar[tuple[str, ...]] = ()
    _settings: dict[str, Any]

    def feature_lists(self) -> dict[str, Sequence[Feature] | None]:
        """Each name of ``feature_arguments`` -> the feature list to save under it."""
        raise NotImplementedError

    def keep_settings(self, **settings: Any) -> None:
        """Record the constructor's other arguments (JSON values only) for :meth:`get_config`."""
        try:
            self._settings = json.loads(json.dumps(settings, default=_scalar))
        except (TypeError, ValueError):
            raise UsageError(
                f"{type(self).__name__}: {', '.join(settings)} must be JSON values (numbers, strings,"
                " booleans, lists, dicts)"
            ) from None

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments under its own names (features as dicts)."""
        lists = self.feature_lists()
        config = {name: features_to_dicts(list(lists[name] or [])) or None for name in self.feature_arguments}
        return {**config, **self._settings}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        kwargs = dict(config)
        for key in cls.feature_arguments:
            if kwargs.get(key) is not None:
                kwargs[key] = features_from_dicts(kwargs[key])
        return cls(**kwargs)


class FaceBookDSSM(FeatureListArguments, DSSM):
    """Facebook's EBR two-tower model (see the module docstring).

    Args:
        user_features: user-side features (ids, side features, pooled histories).
        pos_item_features: item features; the first is the item id.
        neg_item_features: the batch columns of each row's negative item, one per positive item feature
            in the same order (the first is the negative's id: the trainer's ``neg_items`` column).
            ``None``, or the positive features themselves, when the trainer samples the negatives.
        user_params / item_params: tower MLPs: ``dims`` (the last is the output size; both towers end at
            the same size), ``activation``, ``dropout``, ``batch_norm``.
        temperature: logits are ``cosine / temperature``.
        embedding_init_std: standard deviation of the embedding initialisation.
        recent_history: also feed the user tower the mean of the most recent history items (DSSM's
            short-term input; 0 = off).
    """

    feature_arguments = ("user_features", "pos_item_features", "neg_item_features")

    def __init__(
        self,
        user_features: Sequence[Feature],
        pos_item_features: Sequence[Feature],
        neg_item_features: Sequence[Feature] | None = None,
        user_params: Mapping[str, Any] | None = None,
        item_params: Mapping[str, Any] | None = None,
        temperature: float = 1.0,
        *,
        embedding_init_std: float = 0.05,
        recent_history: int = 0,
    ) -> None:
        super().__init__(
            user_features,
            pos_item_features,
            temperature=temperature,
            user_params=user_params,
            item_params=item_params,
            embedding_init_std=embedding_init_std,
            recent_history=recent_history,
        )
        negatives = list(neg_item_features or [])
        if len(negatives) > len(self.item_features):
            raise UsageError(
                f"FaceBookDSSM: {len(negatives)} neg_item_features for {len(self.item_features)}"
                " pos_item_features; give one negative column per positive item feature, in the same order"
            )
        pairs = [
            (pos, neg)
            for pos, neg in zip(self.item_features, negatives, strict=False)
            if neg.name != pos.name
        ]
        #: positive item feature -> the batch column holding the negative item's value of it
        self.negative_columns = {pos.name: neg.name for pos, neg in pairs}
        if self.negative_columns and self.item_id_feature not in self.negative_columns:
            raise UsageError(
                "FaceBookDSSM: the first of neg_item_features must be the negative item's id column"
                f" (for '{self.item_id_feature}'), e.g. SparseFeature('neg_items', ...)"
            )
        self._given_negatives = negatives
        self.neg_item_feature = [neg for _, neg in pairs]
        self.neg_items_key = self.negative_columns.get(self.item_id_feature, "neg_items")
        self.keep_settings(**dssm_settings(self, user_params, item_params, embedding_init_std))

    @torch.no_grad()
    def remember_items(self, batch: Batch) -> None:
        """Record the side features of the batch's positives and, from the negative columns, of its
        negatives."""
        super().remember_items(batch)
        neg_key = self.negative_columns.get(self.item_id_feature)
        if self.item_table_complete or neg_key is None or neg_key not in batch:
            return
        ids = batch[neg_key].long()
        negatives: dict[str, torch.Tensor] = {self.item_id_feature: ids.reshape(-1)}
        for pos_name, neg_name in self.negative_columns.items():
            if pos_name != self.item_id_feature and neg_name in batch:
                values = batch[neg_name]
                negatives[pos_name] = values.reshape(ids.numel(), *values.shape[ids.dim() :])
        super().remember_items(negatives)

    def feature_lists(self) -> dict[str, Sequence[Feature] | None]:
        return {
            "user_features": self.user_features,
            "pos_item_features": self.item_features,
            "neg_item_features": self._given_negatives,
        }


__all__ = ["FaceBookDSSM"]
