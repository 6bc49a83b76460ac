"""MovieLens datasets (100K, 1M, latest-small, 20M, 25M) read from the GroupLens files.

Only hookimpls live here; the readers are imported when a dataset is actually loaded. Each dataset
ships its GroupLens archive (``zoo data download NAME``), listed by ``zoo data list`` in this order.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.data.archive import Archive
from zoo.specs import DatasetSpec

_LOADER = "zoo_plugins.movielens.loader"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"


def _grouplens(folder: str, sha256: str, size: int) -> Archive:
    """The GroupLens zip ``<folder>.zip``, holding ``<folder>/``."""
    return Archive(url=f"{GROUPLENS_URL}/{folder}.zip", folder=folder, checksum=f"sha256:{sha256}", size=size)


# Checksums and sizes: tensorflow/datasets @ 1c076ac3c19c8ea83e1d1a75e0623c9a699e0d7c,
# tensorflow_datasets/url_checksums/movielens.txt (sha256 and byte size of each GroupLens zip).
# Cross-checked: the md5s published for ml-100k/1m/20m/25m (0e33842e..., c4d9eecf..., cd245b17...,
# 6b51fb27...; eli-osherovich/papers_with_code, datasets/movielens/dl_config.py) are quoted next to
# these same sha256 values in several independent repositories, and the ml-latest-small sha256
# belongs to the 2018-09-26 release (100,836 ratings).
@hookimpl
def zoo_register_datasets() -> list[DatasetSpec]:
    """The MovieLens releases; each reads its unpacked GroupLens folder (``zoo data download NAME``)."""
    return [
        DatasetSpec(
            name="movielens-100k",
            factory=f"{_LOADER}:load_ml100k",
            description=(
                "MovieLens 100K: 100,000 ratings of 1,682 movies by 943 users, with user and movie features"
            ),
            needs_path=True,
            default_protocol="loo",
            archive=_grouplens(
                "ml-100k", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", 4_924_029
            ),
        ),
        DatasetSpec(
            name="movielens-1m",
            factory=f"{_LOADER}:load_ml1m",
            description=(
                "MovieLens 1M: 1,000,209 ratings of 3,706 movies by 6,040 users, with user and movie features"
            ),
            needs_path=True,
            default_protocol="deepmatch",
            archive=_grouplens(
                "ml-1m", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", 5_917_549
            ),
        ),
        DatasetSpec(
            name="movielens-latest-small",
            factory=f"{_LOADER}:load_ratings_csv",
            description=(
                "MovieLens latest-small (2018): 100,836 ratings of 9,724 movies by 610 users, with genres"
            ),
            needs_path=True,
            default_protocol="loo",
            archive=_grouplens(
                "ml-latest-small", "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", 978_202
            ),
        ),
        DatasetSpec(
            name="movielens-20m",
            factory=f"{_LOADER}:load_ratings_csv",
            description="MovieLens 20M: 20,000,263 ratings by 138,493 users, with genres",
            needs_path=True,
            default_protocol="loo",
            archive=_grouplens(
                "ml-20m", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3", 198_702_078
            ),
        ),
        DatasetSpec(
            name="movielens-25m",
            factory=f"{_LOADER}:load_ratings_csv",
            description="MovieLens 25M: 25,000,095 ratings by 162,541 users, with genres",
            needs_path=True,
            default_protocol="loo",
            archive=_grouplens(
                "ml-25m", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", 261_978_986
            ),
        ),
    ]
