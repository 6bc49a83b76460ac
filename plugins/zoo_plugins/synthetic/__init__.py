"""The ``synthetic`` dataset: a seeded interaction log with learnable structure (no download).

Only hookimpls live here; the generator (numpy, pandas) is imported when the dataset is loaded.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import DatasetSpec


@hookimpl
def zoo_register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="synthetic",
            factory="zoo_plugins.synthetic.generator:load",
            description=(
                "Generated log: Zipf popularity per category, multi-interest users with demographics,"
                " item series and sequential interest (about 80k events by default)"
            ),
            options={
                "users": 2000,
                "items": 1000,
                "categories": 20,
                "mean_length": 40,
                "interests": 3,
                "seed": 0,
                "min_length": 5,
                "zipf": 1.0,
                "series_length": 4.0,
                "successor": 0.35,
                "stay": 0.8,
                "explore": 0.05,
                "brands": 4,
                "regions": 6,
                "side_signal": 1.5,
                "price_sensitivity": 0.6,
                "ratings": True,
                "start_time": 1_600_000_000,
            },
            default_protocol="loo",
        )
    ]
