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

    from zoo.pipeline import RunConfig
    from zoo.report import RunReport
    from zoo.specs import DatasetSpec, ModelSpec, RetrieverSpec
    from zoo.train.callbacks import Callback


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
    def zoo_trainer_callbacks(self, config: RunConfig) -> Iterable[Callback] | None:
        """Callbacks to add to the trainer of every run (``zoo run``, ``zoo bench``, the quality
        benchmark): live tracking (TensorBoard, MLflow, W&B...). ``config`` is the run's
        :class:`~zoo.pipeline.RunConfig`; return None to stay out of a run. A callback gets
        ``on_fit_start``, ``on_epoch_start``, ``on_batch_end`` (step loss) and ``on_epoch_end`` (the
        epoch's logs: loss, learning rate, validation metric and value) and ``on_fit_end``; see
        :class:`zoo.train.callbacks.Callback`. A callback that raises is switched off with one warning.

        Example::

            @zoo.hookimpl
            def zoo_trainer_callbacks(config):
                class Valid(zoo.train.Callback):
                    def on_epoch_end(self, trainer, epoch, logs):
                        print(epoch, logs.get("valid_metric"), logs.get("valid"), file=sys.stderr)

                return [Valid()]
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
