"""One workflow against one library, in its own process (``benchmarks/rechub_side_by_side.py`` starts it
with each library's Python): writes ``embeddings.npz`` (user and item vectors, test targets, catalogue
ids) and ``run.json`` (library seconds per stage, training rows, Torch-RecHub-only changes) to OUT.

    RECALL_WORKFLOW_LIBRARY=torch_rechub python benchmarks/rechub_workflows/child.py dssm CSV OUT
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
from pathlib import Path

WORKFLOWS = ("dssm", "gru4rec", "mind")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workflow", choices=WORKFLOWS)
    parser.add_argument("csv", help="the tutorial's movielens.csv")
    parser.add_argument("out", help="folder for embeddings.npz and run.json")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the workflow's")
    parser.add_argument("--layers", type=int, default=2, help="GRU layers (gru4rec)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    library = importlib.import_module("library")
    workflow = importlib.import_module(args.workflow)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = {"epochs": args.epochs, "layers": args.layers}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    result = workflow.run(args.csv, str(out), **options)
    np.savez(
        out / "embeddings.npz",
        user=result["user"],
        item=result["item"],
        target=result["target"],
        catalogue=result["catalogue"],
    )
    info = {
        "library": library.LIBRARY,
        "workflow": args.workflow,
        "seconds": result["seconds"],
        "train_rows": int(result["train_rows"]),
        "changes": result["changes"],
        "torch_threads": result["torch_threads"],
        "torch": torch.__version__,
        "options": options,
        "pid": os.getpid(),
    }
    (out / "run.json").write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
