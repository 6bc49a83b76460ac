"""The README works as written.

* its Python code blocks run unchanged, in a folder holding the ``movielens.csv`` they read (written
  here from the synthetic generator in the seed tutorial's layout);
* every ``zoo`` command in its shell blocks names a sub-command that ``zoo --help`` lists (and, for a
  command group such as ``zoo data``, one of the group's sub-commands);
* the headline figures of its model table are the seed-0 results in ``benchmarks/results/``;
* it stays a user's document: under 200 lines.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tests.conftest import write_seed_csv
from zoo_cli.main import build_app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
ZOO_CALL = re.compile(r"(?:^|[\s;&|(])zoo\s+([a-z][a-z0-9-]*)(?:\s+([a-z][a-z0-9-]*))?")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < 200, f"README.md has {lines} lines: results go to benchmarks/results/ and docs/"


@pytest.mark.slow
def test_the_python_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_plugins.synthetic.generator import generate

    code = blocks("python")
    assert code, "the README has no Python example"
    write_seed_csv(tmp_path / "movielens.csv", generate(users=200, items=80, categories=5, seed=3))
    monkeypatch.chdir(tmp_path)
    for number, block in enumerate(code, 1):
        namespace: dict = {"__name__": "__readme__"}
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)  # noqa: S102
    last = namespace
    items = set(last["all_item"]["movie_id"].tolist())
    assert len(last["similar_items"]) == 10 and set(last["similar_items"].tolist()) <= items
    assert last["user_embeddings"].shape[0] == len(last["x_test"]["user_id"])
    assert (tmp_path / "model.pth").is_file() and (tmp_path / "model.safetensors").is_file()


def command_tree() -> dict[str, set[str]]:
    """Top-level ``zoo`` sub-commands -> their own sub-commands (empty for a plain command)."""
    app = build_app()
    group = get_command(app)
    listing = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert listing.exit_code == 0, listing.output
    tree: dict[str, set[str]] = {}
    with group.make_context("zoo", ["--help"], resilient_parsing=True) as ctx:
        for name in group.list_commands(ctx):
            assert name in listing.output, f"'zoo --help' does not list {name}"
            command = group.get_command(ctx, name)
            tree[name] = set(getattr(command, "commands", {}))
    return tree


def test_every_shell_command_names_a_real_sub_command() -> None:
    tree = command_tree()
    calls = [m.groups() for block in blocks("bash") for m in ZOO_CALL.finditer(block)]
    assert len(calls) >= 5, f"the README's shell blocks show only {calls}"
    unknown = [" ".join(filter(None, call)) for call in calls if call[0] not in tree]
    assert not unknown, f"the README runs zoo commands that do not exist: {unknown}; zoo has {sorted(tree)}"
    bad = [f"zoo {name} {sub}" for name, sub in calls if tree[name] and sub not in tree[name]]
    assert not bad, f"the README runs sub-commands that do not exist: {bad}"


def test_the_model_table_quotes_the_results_files() -> None:
    """Each model's row quotes its quality results: the mean ± std of a several-seed record where the
    model has one (newest first), else its seed-0 record."""
    seed0, seeds = {}, {}
    for path in sorted(RESULTS.glob("*-quality-*.json")):
        record = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        if record["seed"] == 0:
            seed0[record["model"]] = record["figures"]
        elif isinstance(record["seed"], list) and len(record["seed"]) > 1:
            seeds[record["model"]] = record["figures"]  # sorted by name: the newest date wins
    rows = re.findall(
        r"^\| \[`([a-z0-9-]+)`\]\(docs/models/[^|]*\|[^|]*\|[^|]*\| "
        r"\[HitRate@(\d+) ([\d.]+)(?: ± ([\d.]+))?\]",
        README.read_text(encoding="utf-8"),
        flags=re.M,
    )
    assert {model for model, _, _, _ in rows} == set(seed0) | set(seeds)
    for model, k, value, spread in rows:
        if model in seeds:
            figures = seeds[model]
            assert str(figures[f"hitrate@{k}"]) == value, f"README quotes {model} HitRate@{k} {value}"
            assert str(figures[f"hitrate@{k}_std"]) == spread, f"README quotes {model} ± {spread}"
        else:
            assert not spread, f"README quotes a spread for {model}, which has no several-seed record"
            assert str(seed0[model][f"hitrate@{k}"]) == value, f"README quotes {model} HitRate@{k} {value}"


def test_the_use_a_trained_model_section_runs(tmp_path: Path) -> None:
    """Every line of "Use a trained model", as written, in a fresh folder: train, recommend, export,
    serve (on 127.0.0.1, stopped after) and curl; the HTTP answer equals `zoo recommend`'s."""
    import os
    import signal
    import subprocess
    import sys
    import time

    section = README.read_text(encoding="utf-8").split("## Use a trained model", 1)[1]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:1]
    lines = [line.split("  #", 1)[0].strip() for line in block.strip().splitlines()]
    assert [line.split()[1] for line in lines[:4]] == ["run", "recommend", "export", "serve"]
    zoo = str(Path(sys.executable).with_name("zoo"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def shell(line: str) -> str:
        done = subprocess.run(line.replace("zoo ", f"{zoo} ", 1), shell=True, cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        return done.stdout

    for line in lines[:3]:
        shell(line)
    assert (tmp_path / "runs" / "dssm" / "export" / "manifest.json").is_file()
    recommended = json.loads(shell(lines[1] + " --format json"))[0]
    server = subprocess.Popen(lines[3].replace("zoo ", f"{zoo} ", 1), shell=True, cwd=tmp_path, env=env,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and answer is None:
            time.sleep(0.5)
            done = subprocess.run(lines[4], shell=True, capture_output=True, text=True, timeout=30)
            answer = json.loads(done.stdout) if done.returncode == 0 and done.stdout else None
        assert answer is not None, "zoo serve did not answer on 127.0.0.1:8000"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert [e["item_id"] for e in answer["items"]] == [e["item_id"] for e in recommended["items"]]
    from zoo.serving import Recommender

    python = Recommender.load(tmp_path / "runs" / "dssm").recommend([42], k=10)[0]
    assert python.items == [e["item_id"] for e in recommended["items"]]
