"""DSSM: towers, temperature, padding, persistence, the seed's constructor and the models facade."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import DataError, ModelFileError, UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import RecallModel, load_model
from zoo_plugins.dssm.model import DSSM


def make_model(temperature: float = 0.5, **kwargs) -> DSSM:
    torch.manual_seed(0)
    user_features = [
        SparseFeature("user_id", vocab_size=20, embed_dim=8),
        SparseFeature("gender", vocab_size=3, embed_dim=8),
        SequenceFeature("hist_movie_id", vocab_size=30, embed_dim=8, pooling="mean", shared_with="movie_id"),
    ]
    item_features = [
        SparseFeature("movie_id", vocab_size=30, embed_dim=8),
        SparseFeature("cate_id", vocab_size=5, embed_dim=8),
    ]
    params = {"dims": [16, 8], "activation": "prelu"}
    return DSSM(
        user_features,
        item_features,
        temperature=temperature,
        user_params=params,
        item_params=dict(params),
        **kwargs,
    )


def make_batch(n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    hist = torch.randint(1, 30, (n, 5), generator=g)
    hist[:, :2] = 0  # left padding
    return {
        "user_id": torch.randint(1, 20, (n,), generator=g),
        "gender": torch.randint(1, 3, (n,), generator=g),
        "hist_movie_id": hist,
        "movie_id": torch.randint(1, 30, (n,), generator=g),
        "cate_id": torch.randint(1, 5, (n,), generator=g),
    }


def test_towers_are_l2_normalised_and_share_the_item_table():
    model = make_model().eval()
    batch = make_batch()
    user, item = model.user_tower(batch), model.item_tower(batch)
    assert user.shape == item.shape == (6, 8)
    torch.testing.assert_close(user.norm(dim=-1), torch.ones(6))
    torch.testing.assert_close(item.norm(dim=-1), torch.ones(6))
    assert model.embedding.table("hist_movie_id") is model.embedding.table("movie_id")


def test_temperature_divides_the_logits_in_forward():
    batch = make_batch()
    cold, hot = make_model(temperature=0.1).eval(), make_model(temperature=1.0).eval()
    hot.load_state_dict(cold.state_dict())
    score = cold.score(cold.user_tower(batch), cold.item_tower(batch))
    torch.testing.assert_close(cold(batch), torch.sigmoid(score / 0.1))
    torch.testing.assert_close(hot(batch), torch.sigmoid(score / 1.0))
    assert not torch.allclose(cold(batch), hot(batch))


def test_padding_is_never_pooled():
    model = make_model().eval()
    batch = make_batch()
    before = model.user_tower(batch)
    # Padding id 0 everywhere it was padding: changing the table row of id 0 changes nothing.
    with torch.no_grad():
        model.embedding.table("movie_id").weight[0].add_(10.0)
    torch.testing.assert_close(model.user_tower(batch), before)
    # The history is the mean of the real items only.
    hist = batch["hist_movie_id"]
    table = model.embedding.table("movie_id").weight
    pooled = model.embedding.embed(batch, "hist_movie_id")
    torch.testing.assert_close(pooled, table[hist[:, 2:]].mean(dim=1))
    # Changing a real item does change the user vector.
    changed = dict(batch, hist_movie_id=hist.clone())
    changed["hist_movie_id"][:, -1] = (hist[:, -1] % 29) + 1
    assert not torch.allclose(model.user_tower(changed), before)


def test_seed_forward_modes():
    model = make_model().eval()
    batch = make_batch()
    model.mode = "user"
    torch.testing.assert_close(model(batch), model.user_tower(batch))
    model.mode = "item"
    torch.testing.assert_close(model(batch), model.item_tower(batch))


def test_constructor_errors_are_clear():
    with pytest.raises(UsageError, match="end at the same size|last entries"):
        DSSM(
            [SparseFeature("u", 5, 4)],
            [SparseFeature("i", 5, 4)],
            user_params={"dims": [8]},
            item_params={"dims": [6]},
        )
    with pytest.raises(UsageError, match="pooling"):
        DSSM([SequenceFeature("h", 5, 4, pooling=None)], [SparseFeature("i", 5, 4)])
    with pytest.raises(UsageError, match="temperature"):
        make_model(temperature=0)
    with pytest.raises(UsageError, match="unknown key"):
        DSSM([SparseFeature("u", 5, 4)], [SparseFeature("i", 5, 4)], user_params={"dim": [8]})


def test_unknown_id_at_inference_is_a_one_line_data_error():
    model = make_model().eval()
    batch = make_batch()
    batch["user_id"][0] = 999
    with pytest.raises(DataError) as info:
        model.user_tower(batch)
    message = str(info.value)
    assert "\n" not in message and "user_id" in message and "999" in message


def test_item_table_lets_ids_alone_produce_full_item_vectors():
    model = make_model().eval()
    batch = make_batch()
    model.remember_items(batch)
    from_ids = model.item_vectors(batch["movie_id"])
    torch.testing.assert_close(from_ids, model.item_tower(batch))


def test_save_load_round_trip_gives_identical_vectors(tmp_path):
    model = make_model().eval()
    batch = make_batch()
    model.remember_items(batch)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, DSSM) and isinstance(loaded, RecallModel)
    loaded.eval()
    torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
    torch.testing.assert_close(
        loaded.item_vectors(batch["movie_id"]), model.item_vectors(batch["movie_id"]), rtol=0, atol=0
    )
    assert loaded.temperature == model.temperature


def test_torch_save_state_dict_round_trip(tmp_path):
    model = make_model().eval()
    torch.save(model.state_dict(), tmp_path / "model.pth")
    other = make_model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    other.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    other.eval()
    batch = make_batch()
    torch.testing.assert_close(other.user_tower(batch), model.user_tower(batch))


def test_load_rejects_corrupted_weights(tmp_path):
    model = make_model()
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "nowhere")


def test_models_facade_resolves_through_the_registry():
    from zoo.models import DSSM as FacadeDSSM
    from zoo.registry import default_registry

    spec = default_registry().model("dssm")
    assert issubclass(FacadeDSSM, DSSM) and FacadeDSSM.spec == spec  # the class bound to its spec
    assert FacadeDSSM is spec.load() is default_registry().model_class("dssm")  # bound once per spec
    assert (FacadeDSSM.__name__, FacadeDSSM.__module__) == ("DSSM", DSSM.__module__)
    with pytest.raises(ImportError):
        from zoo.models import NoSuchModel  # noqa: F401


# -- registry metadata and saved config: owned by the spec and the constructor -------------------------


def test_model_classes_do_not_restate_the_spec():
    from zoo.registry import default_registry

    for spec in default_registry().specs("model"):
        if spec.dist != "recall-zoo":
            continue
        cls = spec.load()
        factory = cls.unbound_class()
        restated = {"registry_name", "family", "train_modes", "training_data"} & set(vars(factory))
        assert not restated, f"{factory.__name__} restates {sorted(restated)}"
        assert cls.spec == spec and factory.spec is None


def test_models_read_their_metadata_from_the_spec():
    from zoo.models import DSSM as FacadeDSSM
    from zoo.specs import ModelSpec

    bound = FacadeDSSM.from_config(make_model().get_config())
    assert (bound.registry_name, bound.family, bound.train_modes, bound.training_data) == (
        "dssm",
        "two_tower",
        (0, 1, 2),
        "samples",
    )
    assert make_model().registry_name == "dssm"  # imported from its module: found by its factory
    other = ModelSpec(name="tiny-dssm", factory=DSSM, family="two_tower", train_modes=(2,))
    tiny = other.load()
    assert tiny is other.load() and tiny is not FacadeDSSM and issubclass(tiny, DSSM)
    assert tiny.from_config(make_model().get_config()).train_modes == (2,)

    class Unregistered(DSSM):
        pass

    model = Unregistered.from_config(make_model().get_config())
    assert model.registry_name == "" and model.training_data == "samples"  # neutral defaults
    with pytest.raises(AttributeError):
        model.family = "sequential"


def test_saved_config_is_the_constructor_arguments(tmp_path):
    params = {"dims": [16, 8], "activation": "prelu"}
    model = DSSM(
        [SparseFeature("user_id", 20, 8)],
        [SparseFeature("movie_id", 30, 8)],
        0.25,
        params,
        params,
        recent_history=0,
    )
    params["dims"] = [99]  # the caller's dict changing afterwards does not change what is saved
    config = model.get_config()
    assert set(config) == {
        "user_features",
        "item_features",
        "temperature",
        "user_params",
        "item_params",
        "embedding_init_std",
        "recent_history",
    }
    assert (config["user_params"], config["temperature"], config["embedding_init_std"]) == (
        {"dims": [16, 8], "activation": "prelu"},
        0.25,
        0.05,
    )
    loaded = load_model(model.save(tmp_path / "m"))
    batch = make_batch()
    torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)


def test_constructor_arguments_must_be_json_values(tmp_path):
    import numpy as np

    class Odd(DSSM):
        def __init__(self, user_features, item_features, scale=1.0, **kwargs):
            super().__init__(user_features, item_features, **kwargs)
            self.scale = scale

    features = [SparseFeature("user_id", 20, 8)], [SparseFeature("movie_id", 30, 8)]
    config = Odd(*features, scale=np.float32(2.0), recent_history=1).get_config()
    assert (config["scale"], config["recent_history"]) == (2.0, 1)  # numpy scalars and **kwargs are saved
    assert float(Odd(*features, scale=float("inf")).get_config()["scale"]) == float("inf")
    with pytest.raises(UsageError, match=r"Odd\(scale=\.\.\.\).*JSON"):
        Odd(*features, scale=object()).save(tmp_path / "m")


def test_explicit_config_is_still_honoured():
    class Legacy(DSSM):
        def __init__(self, user_features, item_features, width=4):
            from zoo.models.base import RecallModel as Base

            Base.__init__(
                self, user_features=user_features, item_features=item_features, config={"width": width}
            )

    model = Legacy([SparseFeature("user_id", 20, 8)], [SparseFeature("movie_id", 30, 8)], width=7)
    assert model.get_config()["width"] == 7 and model.get_config()["temperature"] == 1.0


def test_bound_models_pickle_and_deepcopy():
    import copy
    import pickle

    from zoo.models import DSSM as FacadeDSSM

    model = FacadeDSSM.from_config(make_model().get_config()).eval()
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert type(clone) is FacadeDSSM and clone.registry_name == "dssm"
        batch = make_batch()
        torch.testing.assert_close(clone.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
