"""The ``dssm`` model plugin: two-tower DSSM."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="dssm",
            factory="zoo_plugins.dssm.model:DSSM",
            description="Two-tower DSSM: user and item MLPs over feature embeddings (long- and short-term"
            " history), L2-normalised, temperature-scaled",
            family="two_tower",
            train_modes=(0, 1, 2),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "dims": [256, 64],
                "recent_history": 5,
                "activation": "relu",
                "dropout": 0.0,
            },
            trainer_defaults={
                "mode": 2,
                "negatives": "inbatch",
                "epochs": 20,
                "patience": 3,
                "batch_size": 2048,
                "lr": 0.003,
            },
            training_data="samples",
        )
    ]
