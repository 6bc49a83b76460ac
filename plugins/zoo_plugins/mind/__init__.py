"""The ``mind`` model plugin: MIND, multi-interest recall with dynamic routing."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="mind",
            factory="zoo_plugins.mind.model:MIND",
            description=(
                "MIND: K interests from behaviour-to-interest dynamic routing (shared bilinear map,"
                " deterministic), profile MLP, label-aware attention in training"
            ),
            family="multi_interest",
            train_modes=(0, 1, 2),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "interest_num": 4,
                "routing_iterations": 3,
                "power": "inf",
                "dynamic_interests": False,
                "recent_history": 5,
            },
            trainer_defaults={
                "mode": 2,
                "negatives": "inbatch",
                "epochs": 20,
                "patience": 3,
                "batch_size": 2048,
                "lr": 0.003,
                "valid_metric": "hitrate@50",
            },
            training_data="samples",
        )
    ]
