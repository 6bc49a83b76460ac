"""The plugin contract: every hook a recall-zoo plugin can implement.

A plugin is a module (or object) with functions decorated by ``@zoo.hookimpl`` whose names match
the hooks below; it is declared in the ``recall_zoo`` entry-point group of its distribution::

    [project.entry-points.recall_zoo]
    my-index = "my_index_plugin"

Every hook is prefixed ``zoo_``; a misspelt hook name makes the loader reject that plugin with a
clear reason instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from zoo import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps listing free of heavy imports
    import typer

    from zoo.report import RunReport
    from zoo.specs import DatasetSpec, ModelSpec, RetrieverSpec


class ZooSpecs:
    """Hook specifications of the ``zoo`` pluggy project."""

    @hookspec
    def zoo_register_models(self) -> Iterable[ModelSpec]:
        """Return the models this plugin provides.

        Example::

            @zoo.hookimpl
            def zoo_register_models():
                return [ModelSpec(name="my-model", factory="my_pkg.model:MyModel",
                                  family="two_tower", train_modes=(2,), training_data="samples",
                                  model_defaults={"embed_dim": 32},
                                  trainer_defaults={"mode": 2, "epochs": 10})]
        """

    @hookspec
    def zoo_register_retrievers(self) -> Iterable[RetrieverSpec]:
        """Return the retrieval backends this plugin provides.

        Example::

            @zoo.hookimpl
            def zoo_register_retrievers():
                return [RetrieverSpec(name="my-index", factory="my_pkg.index:MyIndex",
                                      build_params={"m": 16}, query_params={"ef": 64})]
        """

    @hookspec
    def zoo_register_datasets(self) -> Iterable[DatasetSpec]:
        """Return the datasets this plugin provides; a factory returns ``zoo.data.Interactions``.

        Example::

            @zoo.hookimpl
            def zoo_register_datasets():
                return [DatasetSpec(name="my-logs", factory="my_pkg.data:load", needs_path=True)]
        """

    @hookspec
    def zoo_register_commands(self, app: typer.Typer) -> None:
        """Add sub-commands to the ``zoo`` command line (``app`` is the root ``typer.Typer``).

        A command whose name a core command already uses is refused and reported.

        Example::

            @zoo.hookimpl
            def zoo_register_commands(app):
                @app.command()
                def hello(name: str = "world"):
                    print(f"hello {name}")
        """

    @hookspec
    def zoo_run_finished(self, report: RunReport) -> None:
        """Called once after ``zoo run`` finished and wrote its run directory (sinks: MLflow, CSV...).

        Example::

            @zoo.hookimpl
            def zoo_run_finished(report):
                print(report.run_dir, report.metrics["exact"]["hitrate@10"], file=sys.stderr)
        """


HOOK_NAMES: tuple[str, ...] = tuple(name for name in vars(ZooSpecs) if name.startswith("zoo_"))
REGISTRATION_HOOKS: dict[str, str] = {
    "model": "zoo_register_models",
    "retriever": "zoo_register_retrievers",
    "dataset": "zoo_register_datasets",
}
