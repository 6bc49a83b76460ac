"""The ``gru4rec`` model plugin: a GRU over the item sequence, trained on every position."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="gru4rec",
            factory="zoo_plugins.gru4rec.model:GRU4Rec",
            description=(
                "GRU4Rec: GRU over the padding-free item sequence, next-item training on every position"
                " (full softmax, shared popularity negatives with logQ, or BPR-max); preset tuned for"
                " MovieLens-1M under --protocol recbole-seq"
            ),
            family="sequential",
            train_modes=(1, 2),
            model_defaults={
                "embed_dim": 64,
                "hidden_size": 128,
                "num_layers": 1,
                "dims": [64],
                "dropout": 0.3,
                "temperature": 0.05,
                "normalize": True,
            },
            trainer_defaults={
                "mode": 2,
                "negatives": "full",
                "epochs": 50,
                "patience": 10,
                "batch_size": 256,
                "lr": 0.003,
                "ema_decay": 0.999,
                "valid_metric": "hitrate@10",
            },
            training_data="sequences",
            data_defaults={
                "window_stride": 10,
            },
        )
    ]
