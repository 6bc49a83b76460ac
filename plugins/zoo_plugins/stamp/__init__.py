"""The ``stamp`` model plugin: short-term attention/memory priority over the session."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="stamp",
            factory="zoo_plugins.stamp.model:STAMP",
            description=(
                "STAMP: attentive session memory times the last click (trilinear score); next-item"
                " training on every position with full softmax; preset tuned for MovieLens-1M under"
                " --protocol recbole-seq"
            ),
            family="sequential",
            train_modes=(1, 2),
            model_defaults={
                "embed_dim": 64,
                "weight_std": 0.05,
                "emb_std": 0.05,
                "dropout": 0.1,
                "temperature": 0.05,
                "normalize": True,
            },
            trainer_defaults={
                "mode": 2,
                "negatives": "full",
                "epochs": 30,
                "patience": 5,
                "batch_size": 128,
                "lr": 0.003,
                "ema_decay": 0.999,
                "valid_metric": "hitrate@10",
            },
            training_data="sequences",
            data_defaults={"window_stride": 10},
        )
    ]
