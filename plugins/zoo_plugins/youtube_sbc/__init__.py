"""The ``youtube-sbc`` model plugin: the sampling-bias-corrected two-tower model (Yi et al. 2019)."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="youtube-sbc",
            factory="zoo_plugins.youtube_sbc.model:YoutubeSBC",
            description="Sampling-bias-corrected two-tower model (YouTube): L2-normalised towers, in-batch"
            " softmax with a temperature and logQ correction from item frequencies",
            family="two_tower",
            train_modes=(2,),
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
                "logq_correction": True,
                "epochs": 20,
                "patience": 3,
                "batch_size": 1024,
                "lr": 0.002,
            },
            training_data="samples",
        )
    ]
