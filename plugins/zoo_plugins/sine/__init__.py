"""The ``sine`` model plugin: SINE, sparse-interest network (top-L of a prototype pool per user)."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="sine",
            factory="zoo_plugins.sine.model:SINE",
            description=(
                "SINE: top-L of a pool of conceptual prototypes activated per user, intention assignment,"
                " attention per interest, adaptive interest aggregation; Torch-RecHub's constructor too"
            ),
            family="multi_interest",
            train_modes=(0, 1, 2),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "hidden_dim": 64,
                "num_concept": 64,
                "num_intention": 4,
                "readout": "aggregate",
                "aggregation_temperature": 0.1,
                "assignment_temperature": 0.1,
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
