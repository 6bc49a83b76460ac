"""MovieLens datasets (1M, 100K, latest-small, 20M, 25M) read from the GroupLens files.

Only hookimpls live here; the readers are imported when a dataset is actually loaded.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import DatasetSpec

_LOADER = "zoo_plugins.movielens.loader"


@hookimpl
def zoo_register_datasets() -> list[DatasetSpec]:
    """The MovieLens releases; each reads its unpacked GroupLens folder (``zoo data download NAME``)."""
    return [
        DatasetSpec(
            name="movielens-1m",
            factory=f"{_LOADER}:load_ml1m",
            description="MovieLens 1M: 1,000,209 ratings of 3,706 movies by 6,040 users, with user and movie features",
            needs_path=True,
            data_dir_name="ml-1m",
            download="movielens-1m",
            default_protocol="deepmatch",
        ),
        DatasetSpec(
            name="movielens-100k",
            factory=f"{_LOADER}:load_ml100k",
            description="MovieLens 100K: 100,000 ratings of 1,682 movies by 943 users, with user and movie features",
            needs_path=True,
            data_dir_name="ml-100k",
            download="movielens-100k",
            default_protocol="loo",
        ),
        DatasetSpec(
            name="movielens-latest-small",
            factory=f"{_LOADER}:load_ratings_csv",
            description="MovieLens latest-small (2018): 100,836 ratings of 9,724 movies by 610 users, with genres",
            needs_path=True,
            data_dir_name="ml-latest-small",
            download="movielens-latest-small",
            default_protocol="loo",
        ),
        DatasetSpec(
            name="movielens-20m",
            factory=f"{_LOADER}:load_ratings_csv",
            description="MovieLens 20M: 20,000,263 ratings by 138,493 users, with genres",
            needs_path=True,
            data_dir_name="ml-20m",
            download="movielens-20m",
            default_protocol="loo",
        ),
        DatasetSpec(
            name="movielens-25m",
            factory=f"{_LOADER}:load_ratings_csv",
            description="MovieLens 25M: 25,000,095 ratings by 162,541 users, with genres",
            needs_path=True,
            data_dir_name="ml-25m",
            download="movielens-25m",
            default_protocol="loo",
        ),
    ]
