"""Conformance suite for model plugins: the contract every :class:`~zoo.models.RecallModel` keeps.

Subclass it in your tests (the pandas extension-test pattern); recall-zoo's own models run the very
same suite (``tests/test_model_conformance.py``, parametrised over the registry)::

    # tests/test_my_model.py
    import zoo_my_model
    from zoo.testing.models import ModelConformance

    class TestMyModel(ModelConformance):
        model_name = "my-model"
        plugin = zoo_my_model        # registered for the suite; leave None to use the installed plugin
        params = {"embed_dim": 16}   # over the spec's presets, for every test

What it checks, on a tiny built-in ``synthetic`` log (sizes are class attributes you may change):

* the spec is consistent (its preset's mode is one of its train modes, its summary is JSON) and the
  class it loads is bound to it: models report the spec's name, family, train modes and training data
  (the class does not restate them; the spec owns them);
* output shapes: ``user_tower`` gives ``[B, D]``, or ``[B, K, D]`` with ``K == num_interests``;
  ``item_tower`` ``[N, D]``; ``score`` is the dot product (the max over the K interests);
* masking: perturbing what a padded history position reads (row 0 of every embedding table)
  changes no user vector, while changing a real history item does;
* every declared train mode (0, 1, 2) takes optimiser steps on one tiny batch and lowers its loss;
* ``save`` / ``zoo.models.load_model`` round trip gives identical vectors;
* trained briefly through the pipeline on a small synthetic log, the model beats popularity.

To opt out of one test (say why), override it in the subclass and call ``pytest.skip(reason)``. A
model that needs longer training can set ``slow = True`` (marks the class ``slow``) and change
``quality_data`` / ``quality_params``. Requires pytest and torch (imported here, not by
:mod:`zoo.testing`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from zoo.errors import UsageError
from zoo.models.base import RecallModel
from zoo.specs import TRAIN_MODES, ModelSpec

__all__ = ["ModelConformance"]


class ModelConformance:
    """Tests every model must pass. Subclass with a name ``Test...`` so pytest collects it.

    Attributes:
        model_name: registry name of the model under test.
        plugin: a plugin object (your hookimpl module) to register for the suite, on top of
            recall-zoo's built-ins; ``None`` uses the installed plugins (the default registry).
        params: parameters over the spec's presets, used by every test: model keys over its
            ``model_defaults`` (trainer and data keys are dropped where a test builds a model; the
            "beats popularity" test passes them all to the pipeline).
        data_options: the tiny ``synthetic`` log of the shape, masking, training and save tests.
        batch_size, train_steps, train_lr: the "a step lowers the loss" test.
        quality_data, quality_params, quality_metric, quality_ratio: the "beats popularity" test:
            the model trained on ``quality_data`` with ``params`` + ``quality_params`` must reach
            ``quality_ratio`` times popularity's ``quality_metric`` on the test users.
        uses_history: the user tower reads the behaviour history (checked by the masking test).
        interests_param, interest_counts: for multi-interest models, the constructor parameter that
            sets K and the values to build with; the shape test checks ``[B, K, D]`` for each.
        slow: mark the whole class ``slow``.
        device: where the tests run (``"cpu"``; ``"cuda"`` for a GPU check).
        seed: torch seed before building each model.
    """

    model_name: ClassVar[str] = ""
    plugin: ClassVar[object | None] = None
    params: ClassVar[dict[str, Any]] = {}
    data_options: ClassVar[dict[str, Any]] = {
        "users": 120,
        "items": 60,
        "categories": 6,
        "mean_length": 12,
        "seed": 5,
    }
    batch_size: ClassVar[int] = 64
    train_steps: ClassVar[int] = 8
    train_lr: ClassVar[float] = 0.01
    quality_data: ClassVar[dict[str, Any]] = {
        "users": 400,
        "items": 150,
        "categories": 8,
        "mean_length": 20,
        "seed": 3,
    }
    quality_params: ClassVar[dict[str, Any]] = {"epochs": 4, "patience": 2, "batch_size": 256}
    quality_metric: ClassVar[str] = "hitrate@10"
    quality_ratio: ClassVar[float] = 1.2
    uses_history: ClassVar[bool] = True
    interests_param: ClassVar[str | None] = None
    interest_counts: ClassVar[tuple[int, ...]] = (1, 3)
    slow: ClassVar[bool] = False
    device: ClassVar[str] = "cpu"
    seed: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("slow"):
            marks = cls.__dict__.get("pytestmark", [])
            marks = list(marks) if isinstance(marks, (list, tuple)) else [marks]
            cls.pytestmark = [*marks, pytest.mark.slow]

    # -- hooks a subclass may override ------------------------------------------------------------
    @classmethod
    def registry(cls) -> Any:
        """The registry the suite resolves names in (built-ins + :attr:`plugin`, or the default one)."""
        from zoo.testing import suite_registry

        return suite_registry(cls)

    def spec(self) -> ModelSpec:
        if not self.model_name:
            raise NotImplementedError("set model_name in your ModelConformance subclass")
        return self.registry().model(self.model_name)

    def make_model(self, schema: Any, **params: Any) -> RecallModel:
        """A fresh model for ``schema`` (default: the spec's class ``from_schema`` with the spec's
        ``model_defaults``, :attr:`params` and ``params``; trainer and data keys are dropped, as ``zoo
        run`` routes them elsewhere)."""
        spec = self.spec()
        model_params, _, _ = spec.split({**self.params, **params})
        torch.manual_seed(self.seed)
        return spec.load().from_schema(schema, **{**spec.model_defaults, **model_params})

    # -- helpers --------------------------------------------------------------------------------------
    def build(self, data: Any, **params: Any) -> RecallModel:
        """:meth:`make_model` with the catalogue's item table installed, on :attr:`device`, in eval mode."""
        model = self.make_model(data.schema, **params)
        model.set_item_table(data.item_table)
        return model.to(self.device).eval()

    def _on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in batch.items()}

    def user_batch(self, data: Any, n: int = 32) -> dict[str, torch.Tensor]:
        """Inputs of ``n`` test users, exactly as evaluation feeds the user tower."""
        return self._on_device(data.batch(data.test_positions[:n]))

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_data(cls) -> Any:
        """The tiny log as :class:`~zoo.data.match.MatchData` under leave-one-out (shared, read-only)."""
        from zoo.data.match import MatchData
        from zoo.data.protocol import get_protocol

        suite = cls()
        interactions = suite.registry().load_dataset("synthetic", **suite.data_options)
        return MatchData.from_interactions(interactions, get_protocol("loo"))

    # -- the spec -------------------------------------------------------------------------------------
    def test_spec_matches_class(self) -> None:
        spec = self.spec()
        cls = spec.load()
        assert isinstance(cls, type) and issubclass(cls, RecallModel), (
            f"{spec.factory} is not a RecallModel subclass"
        )
        assert cls.spec == spec, "ModelSpec.load() returns the class bound to its spec"
        assert callable(getattr(cls, "from_schema", None)), (
            "zoo run builds models with cls.from_schema(schema, **params)"
        )
        mode = spec.trainer_defaults.get("mode", 2)
        assert mode in spec.train_modes, f"the preset's mode {mode} is not one of train_modes"
        json.dumps(spec.summary())  # presets are shown by `zoo models --json`

    def test_model_reports_its_spec(self, conformance_data: Any) -> None:
        """What the trainer, the data and ``save`` read from a model comes from its spec; a class that
        still restates ``registry_name``, ``family``, ``train_modes`` or ``training_data`` must agree."""
        spec = self.spec()
        model = self.make_model(conformance_data.schema)
        reported = (model.registry_name, model.family, tuple(model.train_modes), model.training_data)
        assert reported == (spec.name, spec.family, spec.train_modes, spec.training_data), (
            f"the model reports (name, family, train modes, training data) {reported}; its spec says"
            f" {(spec.name, spec.family, spec.train_modes, spec.training_data)}: drop the class attributes"
            " that restate them"
        )

    def test_unknown_parameter_is_refused(self, conformance_data: Any) -> None:
        with pytest.raises((TypeError, UsageError)):
            self.make_model(conformance_data.schema, no_such_parameter_xyz=1)

    # -- shapes ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def test_output_shapes(self, conformance_data: Any) -> None:
        data = conformance_data
        model = self.build(data)
        batch = self.user_batch(data)
        n = batch[data.schema.user_id].shape[0]
        user = model.user_tower(batch)
        k = model.num_interests
        if k > 1:
            assert user.dim() == 3 and user.shape[:2] == (n, k), (
                f"expected [B, {k}, D], got {tuple(user.shape)}"
            )
        else:
            assert user.dim() == 2 and user.shape[0] == n, f"expected [B, D], got {tuple(user.shape)}"
        ids = data.catalogue[:50].to(self.device)
        items = model.item_tower(self._on_device(data.item_features(data.catalogue[:50])))
        assert items.shape == (50, user.shape[-1]), "item vectors must be [N, D] with the user vectors' D"
        torch.testing.assert_close(model.item_vectors(ids), items)  # ids alone give full item vectors
        assert torch.isfinite(user).all() and torch.isfinite(items).all()
        assert user.dtype == items.dtype == torch.float32

    @torch.no_grad()
    def test_score_is_the_dot_product_max_over_interests(self, conformance_data: Any) -> None:
        data = conformance_data
        model = self.build(data)
        batch = self.user_batch(data)
        user = model.user_tower(batch)
        item = model.item_vectors(batch[data.schema.item_id])
        expected = (
            (user * item.unsqueeze(1)).sum(-1).max(-1).values if user.dim() == 3 else (user * item).sum(-1)
        )
        torch.testing.assert_close(model.score(user, item), expected)
        assert model.select_interest(user, item).shape == item.shape

    @torch.no_grad()
    def test_interest_counts(self, conformance_data: Any) -> None:
        if self.interests_param is None:
            pytest.skip("single-interest model (set interests_param to check K interests)")
        data = conformance_data
        batch = self.user_batch(data)
        for k in self.interest_counts:
            model = self.build(data, **{self.interests_param: k})
            user = model.user_tower(batch)
            assert model.num_interests == k
            if k == 1:
                assert user.dim() == 2 or user.shape[1] == 1
            else:
                assert user.dim() == 3 and user.shape[1] == k, (
                    f"{self.interests_param}={k} gave {tuple(user.shape)}"
                )

    # -- masking --------------------------------------------------------------------------------------
    def _padded_rows(self, data: Any) -> dict[str, torch.Tensor]:
        """Training samples whose history is partly padding and whose other columns hold no id 0."""
        batch = data.batch(data.train_positions)
        history = batch[data.schema.history_name]
        keep = (history == 0).any(1) & (history != 0).any(1)
        for name, column in batch.items():
            if name != data.schema.history_name and column.dim() == 1 and not column.is_floating_point():
                keep &= column != 0
        rows = keep.nonzero().squeeze(1)[:64]
        if rows.numel() == 0:
            pytest.skip(
                "the tiny log has no partly padded history; raise data_options['mean_length'] or lower users"
            )
        return self._on_device({k: v[rows] for k, v in batch.items()})

    @torch.no_grad()
    def test_padding_changes_nothing(self, conformance_data: Any) -> None:
        data = conformance_data
        model = self.build(data)
        batch = self._padded_rows(data)
        before = model.user_tower(batch)
        perturbed = copy.deepcopy(model)
        generator = torch.Generator().manual_seed(0)
        tables = [m for m in perturbed.modules() if isinstance(m, torch.nn.Embedding)]
        assert tables, "the model has no nn.Embedding: the masking test cannot perturb padding"
        for table in tables:
            noise = torch.randn(table.weight.shape[1], generator=generator).to(table.weight.device)
            table.weight[0] += 3.0 * noise
        after = perturbed.user_tower(batch)
        torch.testing.assert_close(
            after,
            before,
            rtol=1e-4,
            atol=1e-5,
            msg=lambda m: (
                "padded history positions (id 0) changed the user vectors: padding is not masked. " + m
            ),
        )

    @torch.no_grad()
    def test_history_is_read(self, conformance_data: Any) -> None:
        if not self.uses_history:
            pytest.skip("uses_history = False")
        data = conformance_data
        model = self.build(data)
        batch = self._padded_rows(data)
        name = data.schema.history_name
        changed = dict(batch)
        history = batch[name].clone()
        last = history[:, -1]
        real = data.schema.item_vocab - 2  # ids 2..vocab-1 are real items (0 padding, 1 unknown)
        history[:, -1] = (last - 2 + 1) % real + 2
        changed[name] = history
        assert not torch.allclose(model.user_tower(changed), model.user_tower(batch)), (
            "changing the most recent history item changed no user vector"
            " (set uses_history = False if intended)"
        )

    # -- training -------------------------------------------------------------------------------------
    @pytest.mark.parametrize("mode", TRAIN_MODES)
    def test_train_mode_lowers_the_loss(self, conformance_data: Any, mode: int) -> None:
        from zoo.train.trainer import MatchTrainer

        spec = self.spec()
        if mode not in spec.train_modes:
            pytest.skip(f"model '{spec.name}' declares train modes {list(spec.train_modes)}")
        data = conformance_data
        model = self.build(data)
        trainer = MatchTrainer(
            model,
            mode=mode,
            optimizer_params={"lr": self.train_lr},
            n_epoch=1,
            device=self.device,
            model_path=None,
            verbose=False,
            item_counts=data.item_counts,
            seed=self.seed,
            negatives="auto",
        )
        batch = next(iter(data.training_batches(model, self.batch_size, shuffle=False)))

        def loss() -> float:
            model.eval()
            trainer.generator.manual_seed(1234)  # the same sampled negatives for both measurements
            with torch.no_grad():
                return float(trainer.compute_loss(self._on_device(batch)))

        before = loss()
        weights = [p.detach().clone() for p in model.parameters()]
        trainer.train_one_epoch([batch] * self.train_steps)
        after = loss()
        assert any(not torch.equal(w, p) for w, p in zip(weights, model.parameters(), strict=True)), (
            "no parameter changed"
        )
        assert after == after, "the loss is NaN"
        assert after < before, (
            f"mode {mode}: {self.train_steps} steps on one batch did not lower its loss"
            f" ({before:.4f} -> {after:.4f})"
        )

    # -- persistence ------------------------------------------------------------------------------------
    @torch.no_grad()
    def test_save_load_round_trip(self, conformance_data: Any, tmp_path: Path) -> None:
        from zoo.models import load_model

        data = conformance_data
        model = self.build(data)
        folder = model.save(tmp_path / "model")
        assert RecallModel.read_meta(folder)["model"] == self.spec().name
        loaded = load_model(folder, registry=self.registry(), map_location=self.device).eval()
        assert type(loaded) is type(model)
        batch = self.user_batch(data)
        ids = data.catalogue.to(self.device)
        torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
        torch.testing.assert_close(loaded.item_vectors(ids), model.item_vectors(ids), rtol=0, atol=0)
        assert loaded.temperature == model.temperature

    # -- quality ----------------------------------------------------------------------------------------
    def test_beats_popularity(self) -> None:
        from zoo.pipeline import RunConfig, embed, evaluate_exact, evaluate_popularity, prepare, train

        spec = self.spec()
        name, _, k = self.quality_metric.partition("@")
        ks = (int(k),)
        config = RunConfig(
            model=spec.qualified_name,
            retriever="exact",
            dataset="synthetic",
            dataset_options=dict(self.quality_data),
            device=self.device,
            params={**self.params, **self.quality_params},
            seed=self.seed,
            ks=ks,
            save=False,
        )
        trained = train(prepare(config, registry=self.registry()))
        test = embed(trained)
        model = evaluate_exact(test, ks).metrics[self.quality_metric]
        popularity = evaluate_popularity(test, ks).metrics[self.quality_metric]
        assert model > self.quality_ratio * popularity, (
            f"{spec.name}: {self.quality_metric} {model:.4f} is not above {self.quality_ratio} x popularity's"
            f" {popularity:.4f} after {len(trained.history)} epoch(s); tune quality_params / quality_data"
        )
