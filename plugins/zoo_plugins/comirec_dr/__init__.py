"""The ``comirec-dr`` model plugin: ComiRec-DR, dynamic-routing multi-interest recall."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="comirec-dr",
            factory="zoo_plugins.comirec_dr.model:ComirecDR",
            description=(
                "ComiRec-DR: K interests from dynamic routing with per-position bilinear maps"
                " (deterministic), hard label-aware read-out in training"
            ),
            family="multi_interest",
            train_modes=(0, 1, 2),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "interest_num": 4,
                "routing_iterations": 3,
                "profile": True,
                "profile_dims": [256],
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
