"""The ``sdm`` model plugin: SDM, sequential deep matching with long- and short-term interests."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="sdm",
            factory="zoo_plugins.sdm.model:SDM",
            description=(
                "SDM: short-term session (LSTM, multi-head self-attention, user attention) and long-term"
                " behaviour (user attention per side information) fused by a gate; L2-normalised, full"
                " softmax"
            ),
            family="sequential",
            train_modes=(0, 1, 2),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "short_length": 5,
                "rnn_layers": 1,
                "num_heads": 4,
                "dropout": 0.1,
            },
            trainer_defaults={
                "mode": 2,
                "negatives": "full",
                "epochs": 20,
                "patience": 3,
                "batch_size": 2048,
                "lr": 0.003,
                "valid_metric": "hitrate@50",
            },
            training_data="samples",
        )
    ]
