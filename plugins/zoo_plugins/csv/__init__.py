"""The ``csv`` dataset: any CSV / TSV / Parquet interaction log with a column mapping.

Only hookimpls live here; the reader is imported when the dataset is actually loaded.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import DatasetSpec


@hookimpl
def zoo_register_datasets() -> list[DatasetSpec]:
    """One dataset, ``csv``: ``zoo run dssm --dataset csv --data log.csv --param data.user_col=uid ...``."""
    return [
        DatasetSpec(
            name="csv",
            factory="zoo_plugins.csv.loader:load_csv",
            description=(
                "Any interaction log (CSV/TSV with a header, or Parquet): map its columns with --param"
            ),
            needs_path=True,
            data_dir_name=None,
            default_protocol="loo",
            options={
                "user_col": "user_id",
                "item_col": "item_id",
                "time_col": "timestamp",
                "rating_col": "",
                "sep": ",",
            },
        )
    ]
