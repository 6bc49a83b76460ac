"""The ``sasrec`` model plugin: causal self-attention over the item sequence, trained on every position."""

from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [
        ModelSpec(
            name="sasrec",
            factory="zoo_plugins.sasrec.model:SASRec",
            description=(
                "SASRec: causal self-attention with learned positions, tied item embeddings, next-item"
                " training on every position with full softmax (SASRec+); preset tuned for MovieLens-1M"
                " under --protocol sasrec"
            ),
            family="sequential",
            train_modes=(2,),
            model_defaults={
                "embed_dim": 64,
                "num_blocks": 2,
                "num_heads": 1,
                "dropout": 0.1,
                "temperature": 1.0,
            },
            trainer_defaults={
                "mode": 2,
                "negatives": "full",
                "epochs": 200,
                "patience": 10,
                "batch_size": 128,
                "lr": 0.001,
                "valid_metric": "hitrate@10",
            },
            training_data="sequences",
        )
    ]
