"""Ranking evaluation sharded by users: each rank ranks the catalogue for its share of the users,
and the metric sums are all-reduced.

HitRate, Recall, NDCG, MRR and Precision are means over users of a per-user value, and a user's value
depends on that user's ranking only, so the all-reduced sums divided by the number of users are the
unsharded metrics (up to the order of the float64 additions).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from zoo.data.match import RankingTask


def shard_task(task: RankingTask, rank: int, world_size: int) -> RankingTask:
    """Users ``[rank * U // world_size, (rank + 1) * U // world_size)`` of ``task`` (targets, input
    rows and exclusions sliced together; the catalogue is the whole one)."""
    n = task.num_users
    lo, hi = rank * n // world_size, (rank + 1) * n // world_size
    exclude = None
    if task.exclude is not None:
        indptr, indices = task.exclude
        exclude = (indptr[lo : hi + 1] - indptr[lo], indices[int(indptr[lo]) : int(indptr[hi])])
    return RankingTask(
        users={name: column[lo:hi] for name, column in task.users.items()},
        targets=task.targets[lo:hi],
        catalogue=task.catalogue,
        exclude=exclude,
        name=task.name,
    )


def evaluate_sharded(
    evaluate: Callable[[RankingTask], dict[str, float]],
    task: RankingTask,
    rank: int,
    world_size: int,
    reduce_sum: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, float]:
    """``evaluate`` (metrics of one task, with a ``users`` count) on this rank's shard of ``task``, the
    metrics combined over the ranks: every metric is ``sum(metric * users) / sum(users)``, the sums
    taken by ``reduce_sum`` (an all-reduce). The same dict on every rank."""
    shard = shard_task(task, rank, world_size)
    local = evaluate(shard) if shard.num_users else {}
    names = sorted(k for k in local if k != "users")
    # Every rank must reduce the same names: a rank without users reports none, so take the keys of
    # the full task's evaluation shape from the ranks that have some.
    if not names:
        names = sorted(k for k in evaluate(shard_task(task, 0, task.num_users)) if k != "users")
    users = float(local.get("users", 0))
    values = torch.tensor(
        [users, *((local[k] * users) if users else 0.0 for k in names)], dtype=torch.float64
    )
    total = reduce_sum(values)
    count = float(total[0])
    out = {k: (float(total[i + 1]) / count if count else float("nan")) for i, k in enumerate(names)}
    out["users"] = int(round(count))
    return out
