"""The ``youtubednn`` model plugin: YoutubeDNN candidate generation."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="youtubednn",
            factory="zoo_plugins.youtubednn.model:YoutubeDNN",
            description=(
                "YoutubeDNN: MLP over user features and the mean-pooled history; item vectors are the item id"
                " embedding the history shares; L2-normalised, sampled/in-batch softmax"
            ),
            family="two_tower",
            train_modes=(0, 1, 2),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "hidden_dims": [256],
                "recent_history": 10,
            },
            trainer_defaults={
                "mode": 2,
                "negatives": "inbatch",
                "epochs": 20,
                "patience": 3,
                "batch_size": 512,
                "lr": 0.001,
                "valid_metric": "hitrate@50",
            },
            training_data="samples",
        )
    ]
