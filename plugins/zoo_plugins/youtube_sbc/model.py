"""YoutubeSBC: the sampling-bias-corrected two-tower model of Yi et al. (RecSys 2019).

Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations: a query (user) tower
and a candidate (item) tower, both L2-normalised, trained with a softmax over the batch's items, each
logit ``cosine / temperature`` corrected by ``-log q``, ``q`` the item's sampling probability estimated
from its frequency. The towers are DSSM's (:class:`zoo_plugins.dssm.model.DSSM`); the objective is the
trainer's ``inbatch`` negatives (mode 2, ``logq_correction``), which take ``q`` from the item
frequencies (given by the pipeline, or counted from the training batches as they pass, like the
paper's streaming estimate). Torch-RecHub's constructor works::

    YoutubeSBC(user_features, item_features, sample_weight_feature,
               user_params={"dims": [128, 64, 16]}, item_params={"dims": [128, 64, 16]},
               batch_size=512, n_neg=3, temperature=0.02)

Differences from the reference implementation: every row is scored against all the batch's items
(the paper's batch softmax), not ``n_neg`` of them, so ``batch_size`` and ``n_neg`` are accepted and
not needed (any batch size works, the last short batch too); the correction is not divided by the
temperature (the reference computed ``(cosine - log q) / temperature``); vectors are normalised at
inference too (the reference trained on cosine and retrieved with unnormalised dot products); ``q``
comes from the trainer's item frequencies, not from the ``sample_weight`` column (the column is
accepted and not read); in-batch duplicates of a row's positive are never its negatives.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from zoo.errors import UsageError
from zoo.features import Feature
from zoo_plugins.dssm.model import DSSM
from zoo_plugins.facebook_dssm.model import FeatureListArguments, dssm_settings


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise UsageError(f"YoutubeSBC: {name} must be a positive integer, got {value!r}")
    return int(value)


class YoutubeSBC(FeatureListArguments, DSSM):
    """Sampling-bias-corrected two-tower model (see the module docstring).

    Args:
        user_features: user-side features (ids, side features, pooled histories).
        item_features: item features; the first is the item id.
        sample_weight_feature: Torch-RecHub's sampling-weight column; accepted for its constructor and
            not read (``q`` comes from the trainer's item frequencies).
        user_params / item_params: tower MLPs: ``dims`` (the last is the output size; both towers end at
            the same size), ``activation``, ``dropout``, ``batch_norm``.
        batch_size: Torch-RecHub's in-batch index size; accepted, not needed.
        n_neg: Torch-RecHub's in-batch negatives per row; accepted, every other row is a negative here.
        temperature: logits are ``cosine / temperature`` before the logQ correction.
        embedding_init_std: standard deviation of the embedding initialisation.
        recent_history: also feed the user tower the mean of the most recent history items (DSSM's
            short-term input; 0 = off).
    """

    feature_arguments = ("user_features", "item_features", "sample_weight_feature")

    def __init__(
        self,
        user_features: Sequence[Feature],
        item_features: Sequence[Feature],
        sample_weight_feature: Sequence[Feature] | None = None,
        user_params: Mapping[str, Any] | None = None,
        item_params: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        n_neg: int = 3,
        temperature: float = 1.0,
        *,
        embedding_init_std: float = 0.05,
        recent_history: int = 0,
    ) -> None:
        super().__init__(
            user_features,
            item_features,
            temperature=temperature,
            user_params=user_params,
            item_params=item_params,
            embedding_init_std=embedding_init_std,
            recent_history=recent_history,
        )
        batch_size = None if batch_size is None else _positive_int("batch_size", batch_size)
        n_neg = _positive_int("n_neg", n_neg)
        self.sample_weight_feature = list(sample_weight_feature or [])
        self.keep_settings(
            **dssm_settings(self, user_params, item_params, embedding_init_std),
            batch_size=batch_size,
            n_neg=n_neg,
        )

    def feature_lists(self) -> dict[str, Sequence[Feature] | None]:
        return {
            "user_features": self.user_features,
            "item_features": self.item_features,
            "sample_weight_feature": self.sample_weight_feature,
        }


__all__ = ["YoutubeSBC"]
