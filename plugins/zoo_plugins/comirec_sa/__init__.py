"""The ``comirec-sa`` model plugin: ComiRec-SA, self-attentive multi-interest recall."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="comirec-sa",
            factory="zoo_plugins.comirec_sa.model:ComirecSA",
            description=(
                "ComiRec-SA: K interests from multi-head self-attention over the history (learned positions),"
                " hard label-aware read-out in training"
            ),
            family="multi_interest",
            train_modes=(0, 1, 2),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "interest_num": 4,
                "positional": True,
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
