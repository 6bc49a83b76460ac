"""The ``narm`` model plugin: a GRU session encoder with global and local attention, bilinear decoder."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="narm",
            factory="zoo_plugins.narm.model:NARM",
            description=(
                "NARM: GRU session encoder, global + attentive local encoder, bilinear decoder; next-item"
                " training on every position with full softmax; preset tuned for MovieLens-1M under"
                " --protocol recbole-seq"
            ),
            family="sequential",
            train_modes=(1, 2),
            model_defaults={
                "embed_dim": 64,
                "hidden_dim": 100,
                "emb_dropout_p": 0.25,
                "session_rep_dropout_p": 0.25,
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
