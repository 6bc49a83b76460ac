"""NARM: attention and masking, per-position training, Torch-RecHub's form and its session example.

The helpers below (sessions, the run_sbr.py flow, the prefix check, the successor task) are shared with
``tests/test_stamp.py``: both are session models over :mod:`zoo.nn.session`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
import torch

from zoo.data.match import NEXT_ITEM
from zoo.errors import UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import RecallModel, load_model
from zoo.nn.session import causal_keys, masked_attention
from zoo.train.trainer import MatchTrainer
from zoo_plugins.narm.model import NARM

VOCAB = 30
HISTORY = "hist_item_id"


def history_feature(dim: int = 8, vocab: int = VOCAB) -> SequenceFeature:
    return SequenceFeature(HISTORY, vocab_size=vocab, embed_dim=dim, pooling="concat")


def make_model(**kwargs: Any) -> NARM:
    torch.manual_seed(0)
    return NARM(history_feature(), 12, 0.25, 0.5, **kwargs).eval()


def left_padded(length: int = 7) -> torch.Tensor:
    """Six sessions of lengths 7, 5, 3, 1, 0, 6, left-padded with 0."""
    g = torch.Generator().manual_seed(1)
    hist = torch.randint(1, VOCAB, (6, length), generator=g)
    lengths = torch.tensor([7, 5, 3, 1, 0, 6])
    hist[torch.arange(length).unsqueeze(0) < (length - lengths).unsqueeze(1)] = 0
    return hist


def right_padded(hist: torch.Tensor) -> torch.Tensor:
    """The same sessions with their padding at the end (Torch-RecHub's ``pad_sequence``)."""
    out = torch.zeros_like(hist)
    for row, items in enumerate(hist):
        real = items[items != 0]
        out[row, : real.numel()] = real
    return out


# -- shared checks (also run by tests/test_stamp.py) ---------------------------------------------------
def check_padding_anywhere_reads_the_same(model: RecallModel) -> None:
    """Left, right and extra padding, and a perturbed padding embedding, give the same user vectors."""
    hist = left_padded()
    before = model.user_tower({HISTORY: hist})
    torch.testing.assert_close(model.user_tower({HISTORY: right_padded(hist)}), before, atol=1e-6, rtol=1e-5)
    longer = torch.cat([torch.zeros(6, 4, dtype=torch.long), hist], dim=1)
    torch.testing.assert_close(model.user_tower({HISTORY: longer}), before, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        model.embedding.table(HISTORY).weight[0].add_(5.0)
    torch.testing.assert_close(model.user_tower({HISTORY: hist}), before, rtol=0, atol=0)
    assert torch.isfinite(before).all()
    assert not torch.allclose(before[0], before[1])


def check_every_position_is_its_prefix(model: RecallModel) -> None:
    """Trained on windows, the row of position ``t`` is the user vector of the session cut after ``t``
    (nothing after ``t`` is read), and its target is the next item."""
    hist = left_padded()
    targets = torch.where(hist != 0, (hist % (VOCAB - 1)) + 1, 0)
    out = model.train_outputs({HISTORY: hist, NEXT_ITEM: targets})
    rows, positions = ((targets != 0) & (hist != 0)).nonzero(as_tuple=True)
    assert torch.equal(out.pos_ids, targets[rows, positions])
    assert out.pos_item is not None and out.pos_item.shape == out.user.shape
    prefixes = torch.stack(
        [torch.where(torch.arange(7) <= t, hist[r], 0) for r, t in zip(rows, positions, strict=True)]
    )
    torch.testing.assert_close(out.user, model.user_tower({HISTORY: prefixes}), atol=1e-6, rtol=1e-5)


def successor_sessions(n: int, vocab: int, length: int, seed: int) -> list[list[int]]:
    """Sessions walking the catalogue: each item is followed by the next id (wrapping, ids 1..vocab-1)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(1, vocab, n)
    return [[int((s - 1 + i) % (vocab - 1)) + 1 for i in range(length)] for s in starts]


def run_sbr_flow(make: Any, save_dir: Any, *, epochs: int, negatives: str | None = None) -> dict[str, float]:
    """Torch-RecHub's ``examples/matching/run_sbr.py`` with only its imports changed: every prefix of a
    session predicts its next item, batches are right-padded ``({history: x}, y)`` pairs, the trainer
    is mode 2, and the evaluation ranks ``model(x)``'s scores of every item id with ``torch.topk``."""
    import torch.nn.utils.rnn as rnn_utils
    from torch.utils.data import DataLoader

    from zoo.data import TorchDataset
    from zoo.evaluate import topk_metrics
    from zoo.train import MatchTrainer

    def model_input(sessions: list[list[int]], max_seq_len: int = 19) -> tuple[dict[str, list], list]:
        xs = [s[:end][:max_seq_len] for s in sessions for end in range(1, len(s))]
        ys = [s[end] for s in sessions for end in range(1, len(s))]
        return {HISTORY: xs}, ys

    def collate_fn(batch: list) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = rnn_utils.pad_sequence([torch.LongTensor(b[0][HISTORY]) for b in batch], batch_first=True)
        return {HISTORY: x}, torch.LongTensor([b[1] for b in batch])

    torch.manual_seed(2022)
    x_train, y_train = model_input(successor_sessions(200, VOCAB, 8, seed=0))
    x_test, y_test = model_input(successor_sessions(40, VOCAB, 8, seed=1))
    train_dl = DataLoader(TorchDataset(x_train, y_train), collate_fn=collate_fn, batch_size=64)
    test_dl = DataLoader(TorchDataset(x_test, y_test), collate_fn=collate_fn, batch_size=64)
    model = make(SequenceFeature(HISTORY, vocab_size=np.int64(VOCAB), embed_dim=16, pooling="concat"))
    options = {} if negatives is None else {"negatives": negatives}
    trainer = MatchTrainer(
        model,
        mode=2,
        optimizer_params={"lr": 1e-2, "weight_decay": 0},
        n_epoch=epochs,
        device="cpu",
        model_path=str(save_dir),
        **options,
    )
    trainer.fit(train_dl)
    assert (save_dir / "model.safetensors").is_file()
    res: dict[str, list[float]] = defaultdict(list)
    model.eval()
    for input_dict, y_true in test_dl:
        scores = model(input_dict).detach()
        assert scores.shape == (y_true.shape[0], VOCAB) and bool(torch.isinf(scores[:, 0]).all())
        _, y_pred = torch.topk(scores, 3)
        truth = dict(zip(range(len(y_true)), y_true.numpy()[:, None], strict=True))
        pred = dict(zip(range(len(y_pred)), y_pred.numpy(), strict=True))
        for _, m in topk_metrics(truth, pred, topKs=[3]).items():
            k, v = m[0].split(":")
            res[k.strip()].append(float(v.strip()))
    return {k: float(np.mean(v)) for k, v in res.items()}


def check_save_load(model: RecallModel, tmp_path: Any) -> RecallModel:
    hist = left_padded()
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert type(loaded).__name__ == type(model).__name__
    torch.testing.assert_close(
        loaded.user_tower({HISTORY: hist}), model.user_tower({HISTORY: hist}), rtol=0, atol=0
    )
    ids = torch.arange(1, VOCAB)
    torch.testing.assert_close(loaded.item_vectors(ids), model.item_vectors(ids), rtol=0, atol=0)
    return loaded


# -- NARM ----------------------------------------------------------------------------------------------
def test_torch_rechub_constructor_and_facade():
    from zoo.models import NARM as Facade

    model = Facade(history_feature(), 12, 0.25, 0.5)
    assert isinstance(model, NARM) and model.registry_name == "narm"
    assert model.item_id_feature == "item_id" and model.training_data == "sequences"
    assert (model.hidden_dim, model.emb_dropout.p, model.session_rep_dropout.p) == (12, 0.25, 0.5)
    # The history reads the item table: the item vector is the embedding the GRU reads.
    table = model.embedding.table(HISTORY)
    assert table is model.embedding.table("item_id")
    ids = torch.tensor([3, 4, 5])
    torch.testing.assert_close(model.item_vectors(ids), table.weight[ids])
    # With Torch-RecHub's optional item_feature (in-batch negatives), its column is the item id.
    with_item = NARM(history_feature(), 12, 0.0, 0.0, SparseFeature("movie_id", VOCAB, 8))
    batch = {HISTORY: left_padded(), "movie_id": torch.arange(1, 7)}
    assert with_item.item_id_feature == "movie_id" and with_item.item_tower(batch).shape == (6, 8)


def test_shapes_and_full_scores():
    model = make_model()
    hist = left_padded()
    assert model.user_tower({HISTORY: hist}).shape == (6, 8)
    scores = model({HISTORY: hist})
    assert scores.shape == (6, VOCAB) and bool(torch.isinf(scores[:, 0]).all())
    expected = model.user_tower({HISTORY: hist}) @ model.item_vectors(torch.arange(1, VOCAB)).T
    torch.testing.assert_close(scores[:, 1:], expected)
    model.mode = "user"
    torch.testing.assert_close(model({HISTORY: hist}), model.user_tower({HISTORY: hist}))


def test_attention_weights_sum_to_one_over_real_earlier_items():
    model = make_model()
    hist = left_padded()
    values, mask = model._read({HISTORY: hist})
    states, _ = model.gru(values, mask)
    positions = torch.arange(7).expand(6, 7)  # a query at every position
    weights = model.attention(states, mask, positions)
    allowed = causal_keys(mask, positions)
    torch.testing.assert_close(weights[mask].sum(-1), torch.ones(int(mask.sum())))
    assert bool((weights[~allowed] == 0).all()) and bool((weights[allowed] > 0).all())
    assert bool((weights[~mask] == 0).all())  # a query on padding (and the empty row 4) weighs nothing
    # The empty session (row 4) has no key: zero weights, not NaN.
    empty = masked_attention(torch.randn(2, 7), torch.zeros(2, 7, dtype=torch.bool))
    assert torch.equal(empty, torch.zeros(2, 7))


def test_local_encoder_is_the_attention_weighted_sum():
    """Exact reference for one session: an unpadded GRU, the paper's c_g, c_l and bilinear decoder."""
    model = make_model()
    items = left_padded()[0]
    emb = model.embedding.table(HISTORY).weight[items]
    h, _ = model.gru.gru(emb.unsqueeze(0))
    h = h[0]
    scores = model.v(torch.sigmoid(model.a_1(h[-1]) + model.a_2(h))).squeeze(-1)
    local = (torch.softmax(scores, 0).unsqueeze(-1) * h).sum(0)
    expected = model.b(torch.cat([h[-1], local]))
    torch.testing.assert_close(
        model.user_tower({HISTORY: items.unsqueeze(0)})[0], expected, atol=1e-6, rtol=1e-5
    )


def test_padding_anywhere_reads_the_same():
    check_padding_anywhere_reads_the_same(make_model())


def test_every_position_is_its_prefix():
    check_every_position_is_its_prefix(make_model())


def test_user_vector_depends_on_the_order():
    model = make_model()
    hist = left_padded()
    flipped = hist.clone()
    flipped[0] = hist[0].flip(0)
    assert not torch.allclose(model.user_tower({HISTORY: flipped})[0], model.user_tower({HISTORY: hist})[0])


def test_torch_rechub_session_example_learns_the_pattern(tmp_path):
    """run_sbr.py's flow (right padding, (x, y) batches, mode 2): sessions step through the catalogue,
    so the next item is learnable; after training it is in the top 3 for most test prefixes."""
    metrics = run_sbr_flow(lambda feature: NARM(feature, 32, 0.0, 0.0), tmp_path, epochs=8, negatives="full")
    assert metrics["Hit@3"] > 0.8, metrics


def test_torch_rechub_session_example_trains_with_the_default_negatives(tmp_path):
    """As written (mode 2, no negatives named: in-batch softmax), the example trains too."""
    metrics = run_sbr_flow(lambda feature: NARM(feature, 32, 0.0, 0.0), tmp_path, epochs=3)
    assert metrics["Hit@3"] > 0.3, metrics


def check_fit_on_windows_learns(build: Any, interactions: Any) -> None:
    """``zoo run``'s training data (sequence windows, every position a target, full softmax): three
    epochs on the tiny log reach a valid HitRate@10 above 0.3."""
    from zoo.data.match import MatchData
    from zoo.data.protocol import get_protocol

    data = MatchData.from_interactions(interactions, get_protocol("loo"))
    torch.manual_seed(0)
    model = build(data.schema)
    trainer = MatchTrainer(
        model,
        mode=2,
        negatives="full",
        optimizer_params={"lr": 0.01},
        n_epoch=3,
        item_counts=data.item_counts,
        model_path=None,
        seed=0,
        verbose=False,
        valid_metric="hitrate@10",
    )
    history = trainer.fit(data.training_batches(model, 32, seed=0), data.ranking_task("valid"))
    assert history[-1]["loss"] < history[0]["loss"]
    assert trainer.best_score is not None and trainer.best_score > 0.3


def test_fit_on_windows_learns_the_sequences(tiny_interactions):
    def build(schema: Any) -> NARM:
        return NARM.from_schema(
            schema,
            embed_dim=16,
            hidden_dim=24,
            emb_dropout_p=0.0,
            session_rep_dropout_p=0.0,
            normalize=True,
            temperature=0.1,
        )

    check_fit_on_windows_learns(build, tiny_interactions)


def test_save_load_round_trip(tmp_path):
    model = make_model(temperature=0.1, normalize=True, num_layers=2)
    loaded = check_save_load(model, tmp_path)
    assert loaded.temperature == 0.1 and loaded.normalize and loaded.hidden_dim == 12
    assert loaded.item_id_feature == "item_id"


def test_constructor_errors_are_clear():
    with pytest.raises(UsageError, match="SequenceFeature"):
        NARM(SparseFeature(HISTORY, VOCAB, 8), 12, 0.2, 0.2)
    with pytest.raises(UsageError, match="tied"):
        NARM(history_feature(), 12, 0.2, 0.2, SparseFeature("item_id", VOCAB, 16))
    with pytest.raises(UsageError, match="emb_dropout_p"):
        NARM(history_feature(), 12, 1.5, 0.2)
    with pytest.raises(UsageError, match="hidden_dim"):
        NARM(history_feature(), 0, 0.2, 0.2)
    with pytest.raises(UsageError, match="target item"):
        make_model().train_outputs({HISTORY: left_padded()})


def test_preset_and_registry():
    from zoo.registry import default_registry

    spec = default_registry().model("narm")
    assert (spec.family, set(spec.train_modes), spec.training_data) == ("sequential", {1, 2}, "sequences")
    assert (spec.trainer_defaults["negatives"], spec.trainer_defaults["valid_metric"]) == (
        "full",
        "hitrate@10",
    )
    assert "recbole-seq" in spec.description
