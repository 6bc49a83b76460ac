"""Training on several processes: two gloo ranks on the CPU (127.0.0.1, a free port), each test bounded
by a timeout so that a hang fails instead of blocking."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zoo.distributed.evaluate import evaluate_sharded
from zoo.distributed.launch import LauncherOutput, LaunchOptions, rank_argv
from zoo.errors import UsageError

ZOO = str(Path(sys.executable).with_name("zoo"))
TINY = [
    "--param", "data.users=120", "--param", "data.items=60", "--param", "embed_dim=8",
    "--param", "dims=16,8", "--device", "cpu", "--quiet",
]  # fmt: skip
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(fn, *args) -> None:
    """Run ``fn(rank, *args)`` on two gloo ranks; fail (and stop them) after TIMEOUT_S."""
    import torch.multiprocessing as mp

    port = _free_port()
    context = mp.start_processes(fn, args=(port, *args), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the ranks did not finish within {TIMEOUT_S} s")


def _join_group(rank: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    os.environ["ZOO_DIST_TIMEOUT"] = "60"
    torch.set_num_threads(1)


def _prepared():
    from zoo.pipeline import RunConfig, prepare

    return prepare(
        RunConfig(
            model="dssm",
            dataset="synthetic",
            params={"embed_dim": 8, "dims": [16, 8]},
            dataset_options={"users": 80, "items": 40},
            device="cpu",
            save=False,
        )
    )


def _grads(negatives: str, rows: slice, differentiable: bool = True) -> dict[str, torch.Tensor]:
    """Gradients (float64) of one batch's loss under in-batch softmax with logQ (this process's rows
    ``rows`` of a fixed global batch of 16)."""
    from zoo.distributed import active_context
    from zoo.pipeline import build_model
    from zoo.train.config import TrainerConfig
    from zoo.train.trainer import MatchTrainer

    prepared = _prepared()
    model = build_model(prepared).double()  # float64: the comparison at 1e-6 is about the maths, not rounding
    config = TrainerConfig(mode=2, negatives=negatives, num_negatives=4, logq_correction=True, seed=3)
    context = active_context()
    if context is not None:
        context.differentiable_gather = differentiable
    trainer = MatchTrainer.from_config(model, config, device="cpu", item_counts=prepared.data.item_counts)
    positions = prepared.data.train_positions[:16]
    batch = prepared.data.batch(positions[rows])
    loss = trainer.compute_loss(batch)
    loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def _grad_worker(rank: int, port: int, out: str, negatives: str, differentiable: bool) -> None:
    from safetensors.torch import save_file

    from zoo.distributed import init_from_env, shutdown

    _join_group(rank, port)
    init_from_env("cpu")
    grads = _grads(negatives, slice(8 * rank, 8 * rank + 8), differentiable)
    save_file(grads, f"{out}/rank{rank}.safetensors")
    shutdown()


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("negatives", ["inbatch", "mixed"])
def test_two_ranks_give_the_single_process_gradients(tmp_path: Path, negatives: str) -> None:
    from safetensors.torch import load_file

    single = _grads(negatives, slice(0, 16))
    _spawn(_grad_worker, str(tmp_path), negatives, True)
    for rank in (0, 1):
        ranked = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        assert _max_diff(ranked, single) < 1e-6
    assert max(float(g.abs().max()) for g in single.values()) > 1e-3  # the comparison means something


def test_a_plain_all_gather_loses_the_cross_rank_gradients(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    single = _grads("inbatch", slice(0, 16))
    _spawn(_grad_worker, str(tmp_path), "inbatch", False)
    ranked = load_file(str(tmp_path / "rank0.safetensors"))
    assert _max_diff(ranked, single) > 1e-4


def _eval_worker(rank: int, port: int, out: str) -> None:
    import json

    from zoo.distributed import init_from_env, shutdown
    from zoo.pipeline import build_model
    from zoo.train.inference import evaluate_task

    _join_group(rank, port)
    context, _ = init_from_env("cpu")
    prepared = _prepared()
    model = build_model(prepared)
    task = prepared.data.ranking_task("test")
    metrics = context.evaluate(lambda shard: evaluate_task(model, shard, (5, 20), torch.device("cpu")), task)
    Path(out, f"rank{rank}.json").write_text(json.dumps(metrics))
    shutdown()


def test_sharded_evaluation_equals_unsharded(tmp_path: Path) -> None:
    import json

    from zoo.pipeline import build_model
    from zoo.train.inference import evaluate_task

    prepared = _prepared()
    task = prepared.data.ranking_task("test")
    whole = evaluate_task(build_model(prepared), task, (5, 20), torch.device("cpu"))
    _spawn(_eval_worker, str(tmp_path))
    for rank in (0, 1):
        sharded = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert sharded.keys() == whole.keys()
        assert sharded["users"] == whole["users"] == task.num_users
        for key, value in whole.items():
            assert sharded[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
            if key.startswith("hitrate"):  # counts of users: exact
                assert round(sharded[key] * task.num_users) == round(value * task.num_users)


def test_sharding_by_users_sums_back_to_the_whole_task() -> None:
    """Without processes: uneven shards (and ranks with no user) add up to the whole task's metrics."""
    from zoo.pipeline import build_model
    from zoo.train.inference import evaluate_task

    prepared = _prepared()
    model = build_model(prepared)
    task = prepared.data.ranking_task("test")
    whole = evaluate_task(model, task, (5,), torch.device("cpu"))
    names = sorted(k for k in whole if k != "users")
    for world in (3, task.num_users + 2):
        sums: list[torch.Tensor] = []

        def keep(values: torch.Tensor, sums: list[torch.Tensor] = sums) -> torch.Tensor:
            sums.append(values)
            return values

        for rank in range(world):
            evaluate_sharded(
                lambda shard: evaluate_task(model, shard, (5,), torch.device("cpu")),
                task,
                rank,
                world,
                keep,
            )
        total = torch.stack(sums).sum(0)
        assert int(total[0]) == task.num_users
        for i, name in enumerate(names):
            assert float(total[i + 1]) / float(total[0]) == pytest.approx(whole[name], rel=1e-12), name


def _run_cli(args: list[str], timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZOO, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_zoo_run_on_two_processes_writes_one_run(tmp_path: Path) -> None:
    import json

    out = tmp_path / "run"
    result = _run_cli(["run", "dssm", *TINY, "--epochs", "2", "--out", str(out), "--nproc", "2"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one folder, no rank's leftovers
    report = json.loads((out / "run.json").read_text())
    assert report["training"]["epochs_run"] == 2
    exact = report["metrics"]["exact"]
    assert exact["users"] == 120
    assert 0.0 < exact["hitrate@10"] <= exact["hitrate@50"] <= 1.0
    assert all(h["loss"] > 0 for h in report["training"]["history"])
    assert "Traceback" not in result.stderr


def test_zoo_bench_on_two_processes_and_its_cached_rerun(tmp_path: Path) -> None:
    """Rank 0 announces each model it trains; on a rerun it trains none and the other rank is released."""
    import json

    args = ["bench", "dssm", "--retriever", "exact", *TINY, "--epochs", "1", "--out", str(tmp_path / "b")]
    args += ["--nproc", "2", "--latency-queries", "5", "--repeat", "1"]
    first = _run_cli(args)
    assert first.returncode == 0, first.stderr[-2000:]
    doc = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert doc["models"]["dssm"]["status"] == "done"
    again = _run_cli(args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "skipped (finished before) 1" in again.stdout


def _descendant_with(root: int, name: str, value: str) -> int | None:
    """A process below ``root`` whose environment holds ``name=value``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        # the rank itself (a zoo process), not a short-lived helper it started with the same environment
        if f"{name}={value}".encode() in env and b"LOCAL_RANK=1" in env and b"zoo" in command:
            return pid
        todo.extend(children.get(pid, []))
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank's process through /proc")
def test_a_killed_rank_ends_the_run_with_one_clear_error(tmp_path: Path) -> None:
    # patience as long as the epochs: early stopping must not end the run before the kill
    args = ["run", "dssm", *TINY, "--epochs", "400", "--param", "patience=400"]
    args += ["--out", str(tmp_path / "run"), "--nproc", "2"]
    process = subprocess.Popen(
        [ZOO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline and process.poll() is None:
            victim = _descendant_with(process.pid, "RANK", "1")
            time.sleep(0.5)
        assert victim is not None, "rank 1 never started"
        time.sleep(8)  # into training
        assert process.poll() is None, f"the run ended before the kill: {process.communicate()[1][-2000:]}"
        os.kill(victim, signal.SIGKILL)
        _, stderr = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: distributed run failed: rank 1 was killed by signal SIGKILL"), stderr[
        -2000:
    ]
    assert "ChildFailedError" not in stderr and "torch/distributed/elastic" not in stderr
    assert not (tmp_path / "run").exists()


def test_launch_options_and_the_ranks_command_line() -> None:
    assert not LaunchOptions().distributed
    assert LaunchOptions(nproc=2).torchrun_args() == ["--standalone", "--nproc-per-node", "2"]
    two = LaunchOptions(nproc=4, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500").torchrun_args()
    assert two[:4] == ["--nnodes", "2", "--node-rank", "1"] and "10.0.0.1:29500" in two
    with pytest.raises(UsageError, match="--rdzv-endpoint"):
        LaunchOptions(nnodes=2, node_rank=0)
    with pytest.raises(UsageError, match="--node-rank"):
        LaunchOptions(nnodes=2, rdzv_endpoint="h:1")
    with pytest.raises(UsageError, match="--nnodes"):
        LaunchOptions(node_rank=1)
    argv = ["run", "dssm", "--nproc", "2", "--nnodes=1", "--epochs", "3", "-r", "exact"]
    assert rank_argv(argv) == ["run", "dssm", "--epochs", "3", "-r", "exact"]


def test_torchruns_failure_report_becomes_one_line() -> None:
    import io

    sink = io.StringIO()
    output = LauncherOutput(sink)
    lines = [
        "epoch 1/3  loss 1.0\n",
        "W1203 17:38:24.972000 19691 torch/distributed/elastic/multiprocessing/api.py:1028] Sending\n",
        "Traceback (most recent call last):\n",
        '  File "/x/torch/distributed/run.py", line 1, in <module>\n',
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n",
        "Root Cause (first observed failure):\n",
        "  rank      : 1 (local_rank: 1)\n",
        "  exitcode  : -9 (pid: 12)\n",
        "  traceback : Signal 9 (SIGKILL) received by PID 12\n",
    ]
    for line in lines:
        output.feed(line)
    assert sink.getvalue() == "epoch 1/3  loss 1.0\n"
    error = output.error(1)
    assert str(error).startswith("distributed run failed: rank 1 was killed by signal SIGKILL")
    assert error.exit_code == 1
