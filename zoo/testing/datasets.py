"""Conformance suite for dataset plugins: what every dataset factory must deliver.

Subclass it in your tests; recall-zoo's own datasets run the very same suite
(``tests/test_dataset_conformance.py``)::

    # tests/test_my_data.py
    import zoo_my_data
    from zoo.testing.datasets import DatasetConformance

    class TestMyData(DatasetConformance):
        dataset_name = "my-data"
        plugin = zoo_my_data          # registered for the suite; None uses the installed plugin
        options = {"min_rating": 0}   # loader options for the tests

        def write_data(self, folder):  # datasets that read files (needs_path=True): make small ones
            (folder / "events.csv").write_text("user,item,time\\n1,10,1\\n...")
            return folder

What it checks: the spec is sound; loading returns a valid :class:`~zoo.data.Interactions` with the
canonical columns (``user_id``, ``item_id``, numeric ``timestamp``, no empty cells) and side tables
keyed by id; loading twice gives the same frames; an unknown option is refused with a clear message;
the data goes through the dataset's default protocol into training tensors (what ``zoo run`` does);
for folder-based datasets, a missing folder and an empty folder each fail with a one-line
:class:`~zoo.errors.ZooError` (never a traceback). Requires pytest (imported here, not by
:mod:`zoo.testing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from zoo.errors import UsageError, ZooError
from zoo.specs import NAME_PATTERN, DatasetSpec

__all__ = ["DatasetConformance"]


class DatasetConformance:
    """Tests every dataset must pass. Subclass with a name ``Test...`` so pytest collects it.

    Attributes:
        dataset_name: registry name of the dataset under test.
        plugin: a plugin object (your hookimpl module) to register for the suite, on top of
            recall-zoo's built-ins; ``None`` uses the installed plugins (the default registry).
        options: loader options the tests pass (keep the data small).
        protocol: the protocol the preparation test uses (default: the spec's ``default_protocol``).
        protocol_overrides: e.g. ``{"user_core": 0}`` when your tiny files are too small for the
            protocol's filters.
    """

    dataset_name: ClassVar[str] = ""
    plugin: ClassVar[object | None] = None
    options: ClassVar[dict[str, Any]] = {}
    protocol: ClassVar[str | None] = None
    protocol_overrides: ClassVar[dict[str, Any]] = {}

    # -- hooks a subclass may override ------------------------------------------------------------
    @classmethod
    def registry(cls) -> Any:
        """The registry the suite resolves names in (built-ins + :attr:`plugin`, or the default one)."""
        from zoo.testing import suite_registry

        return suite_registry(cls)

    def write_data(self, folder: Path) -> Path:
        """Write small input files into ``folder`` and return the path to pass as ``--data``
        (required for datasets with ``needs_path=True``)."""
        raise NotImplementedError(
            f"dataset '{self.dataset_name}' reads files: override write_data(folder) in your"
            " DatasetConformance subclass"
        )

    def load(self, path: Path | None, **options: Any) -> Any:
        """Load through the registry exactly as ``zoo run --dataset NAME --data PATH`` does."""
        return self.registry().load_dataset(self.dataset_name, path, **{**self.options, **options})

    # -- fixtures -------------------------------------------------------------------------------------
    def spec(self) -> DatasetSpec:
        if not self.dataset_name:
            raise NotImplementedError("set dataset_name in your DatasetConformance subclass")
        return self.registry().dataset(self.dataset_name)

    @pytest.fixture(scope="class")
    @classmethod
    def dataset_path(cls, tmp_path_factory: pytest.TempPathFactory) -> Path | None:
        """Where the test files are (None for datasets that read no files)."""
        suite = cls()
        if not suite.spec().needs_path:
            return None
        return suite.write_data(tmp_path_factory.mktemp("dataset"))

    @pytest.fixture(scope="class")
    @classmethod
    def interactions(cls, dataset_path: Path | None) -> Any:
        """The dataset loaded once (shared by read-only tests: do not modify it)."""
        return cls().load(dataset_path)

    # -- the spec -------------------------------------------------------------------------------------
    def test_spec_is_sound(self) -> None:
        from zoo.data.protocol import get_protocol

        spec = self.spec()
        assert NAME_PATTERN.fullmatch(spec.name)
        assert callable(spec.load()), f"factory {spec.factory!r} is not callable"
        get_protocol(spec.default_protocol)  # raises for an unknown preset
        assert spec.description, "give the dataset a one-line description (shown by `zoo datasets`)"
        unknown = set(self.options) - set(spec.options)
        assert not unknown, f"options {sorted(unknown)} are not declared in the spec's options"

    # -- loading --------------------------------------------------------------------------------------
    def test_loads_interactions(self, interactions: Any) -> None:
        import pandas as pd

        from zoo.data.interactions import EVENT_COLUMNS, Interactions

        assert isinstance(interactions, Interactions), f"the factory returned {type(interactions).__name__}"
        events = interactions.events
        assert isinstance(events, pd.DataFrame)
        assert set(EVENT_COLUMNS) <= set(events.columns)
        assert len(events) > 0
        assert pd.api.types.is_numeric_dtype(events["timestamp"])
        assert not events[list(EVENT_COLUMNS)].isna().any().any()
        interactions.validate()  # side tables keyed by id, multi-valued columns present
        stats = interactions.stats()
        assert stats["users"] > 0 and stats["items"] > 0
        for table, key in ((interactions.users, "user_id"), (interactions.items, "item_id")):
            if table is not None:
                assert key in table.columns and not table[key].duplicated().any()

    def test_loading_is_deterministic(self, interactions: Any, dataset_path: Path | None) -> None:
        import pandas as pd

        again = self.load(dataset_path)
        pd.testing.assert_frame_equal(again.events, interactions.events)
        for first, second in ((interactions.users, again.users), (interactions.items, again.items)):
            assert (first is None) == (second is None)
            if first is not None:
                pd.testing.assert_frame_equal(first, second)

    def test_unknown_option_refused(self, dataset_path: Path | None) -> None:
        with pytest.raises(UsageError, match="no_such_option_xyz"):
            self.load(dataset_path, no_such_option_xyz=1)

    def test_prepares_for_training(self, interactions: Any) -> None:
        from zoo.data.match import MatchData
        from zoo.data.protocol import get_protocol

        protocol = get_protocol(self.protocol or self.spec().default_protocol)
        if self.protocol_overrides:
            protocol = protocol.replace(**self.protocol_overrides)
        data = MatchData.from_interactions(interactions, protocol)
        summary = data.summary()
        assert summary["users"] > 0 and summary["items"] > 0
        assert summary["train_samples"] > 0, (
            "no training sample survives the protocol; write larger test files"
        )
        assert data.ranking_task("test").num_users == summary["users"]

    # -- bad input ------------------------------------------------------------------------------------
    def _one_line(self, error: ZooError) -> None:
        message = str(error)
        assert message and "\n" not in message, f"error messages are one line, got {message!r}"

    def test_missing_folder_is_a_one_line_error(self, tmp_path: Path) -> None:
        if not self.spec().needs_path:
            pytest.skip("the dataset reads no files")
        with pytest.raises(ZooError) as info:
            self.load(tmp_path / "does-not-exist")
        self._one_line(info.value)

    def test_empty_folder_is_a_one_line_error(self, tmp_path: Path) -> None:
        if not self.spec().needs_path:
            pytest.skip("the dataset reads no files")
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(ZooError) as info:
            self.load(empty)
        self._one_line(info.value)
