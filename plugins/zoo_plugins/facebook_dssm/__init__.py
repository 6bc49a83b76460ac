"""The ``facebook-dssm`` model plugin: Facebook's Embedding-Based Retrieval two-tower model, pair-wise."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="facebook-dssm",
            factory="zoo_plugins.facebook_dssm.model:FaceBookDSSM",
            description="Facebook EBR two-tower model: DSSM towers (L2-normalised), trained pair-wise to rank"
            " each positive above sampled negatives (BPR or triplet hinge)",
            family="two_tower",
            train_modes=(1,),
            model_defaults={
                "temperature": 0.05,
                "embed_dim": 64,
                "dims": [256, 64],
                "recent_history": 5,
                "activation": "relu",
                "dropout": 0.0,
            },
            trainer_defaults={
                "mode": 1,
                "negatives": "shared",
                "popularity_alpha": 0.0,
                "num_negatives": 256,
                "pairwise_loss": "bpr",
                "epochs": 20,
                "patience": 3,
                "batch_size": 2048,
                "lr": 0.003,
            },
            training_data="samples",
        )
    ]
