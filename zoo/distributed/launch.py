"""Relaunching a command under ``torchrun`` (``python -m torch.distributed.run``, from this
interpreter), and telling whether this process already runs under it.

The CLI parses ``--nproc``, ``--nnodes``, ``--node-rank`` and ``--rdzv-endpoint`` into
:class:`LaunchOptions` and calls :func:`relaunch`; the relaunched processes see ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment (:func:`under_launcher`) and run the command
itself instead of launching again.

While the ranks run, their output passes through; ``torchrun``'s own report of a failed rank (a
traceback and a table) is read instead of shown, and the failure becomes one line: which rank, how
it ended, that every rank was stopped (:class:`DistributedError`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from zoo.errors import UsageError, ZooError

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""Variables ``torchrun`` sets in every process it starts."""

LAUNCH_FLAGS = ("--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint")
"""The command's own launch options: the relaunched ranks do not get them (``torchrun`` would read
them as its own, and the ranks do not need them)."""


class DistributedError(ZooError):
    """A rank of a distributed run failed; every rank was stopped (exit 1, or the rank's own code)."""


def under_launcher() -> bool:
    """True in a process started by ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``)."""
    return all(name in os.environ for name in LAUNCH_ENV)


def env_rank() -> int:
    """This process's global rank (0 outside ``torchrun``)."""
    return int(os.environ.get("RANK", "0")) if under_launcher() else 0


def is_main_process() -> bool:
    """True for rank 0 and for a process outside ``torchrun``: the one that writes results."""
    return env_rank() == 0


@dataclass(frozen=True)
class LaunchOptions:
    """How many processes to run a command on.

    Args:
        nproc: processes on this machine (one per GPU, or a share of the CPU cores).
        nnodes: machines taking part (each runs the same command with its own ``node_rank``).
        node_rank: this machine's rank, 0 .. nnodes-1 (several machines only).
        rdzv_endpoint: ``HOST:PORT`` of node 0, where the machines meet (several machines only).
    """

    nproc: int = 1
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.nproc < 1:
            raise UsageError(f"--nproc must be >= 1, got {self.nproc}")
        if self.nnodes < 1:
            raise UsageError(f"--nnodes must be >= 1, got {self.nnodes}")
        if self.nnodes > 1:
            if self.node_rank is None or not 0 <= self.node_rank < self.nnodes:
                raise UsageError(
                    f"--nnodes {self.nnodes} needs --node-rank between 0 and {self.nnodes - 1}"
                    " on each machine"
                )
            if not self.rdzv_endpoint or not re.fullmatch(r"[^\s:]+:\d+", self.rdzv_endpoint):
                raise UsageError(
                    "--nnodes > 1 needs --rdzv-endpoint HOST:PORT (node 0's address and a free port),"
                    f" got {self.rdzv_endpoint!r}"
                )
        elif self.node_rank not in (None, 0) or self.rdzv_endpoint:
            raise UsageError("--node-rank and --rdzv-endpoint apply to several machines: add --nnodes N")

    @property
    def distributed(self) -> bool:
        """More than one process in all."""
        return self.nproc * self.nnodes > 1

    def torchrun_args(self) -> list[str]:
        """``torchrun``'s options for these settings: standalone on one machine, a static rendezvous
        at ``rdzv_endpoint`` across several."""
        if self.nnodes == 1:
            return ["--standalone", "--nproc-per-node", str(self.nproc)]
        return [
            "--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank),
            "--rdzv-backend", "static", "--rdzv-endpoint", str(self.rdzv_endpoint),
            "--nproc-per-node", str(self.nproc),
        ]  # fmt: skip


def rank_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` without the launch options (:data:`LAUNCH_FLAGS`, as ``--flag VALUE`` or ``--flag=VALUE``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_FLAGS:
            skip = True
        elif not arg.startswith(tuple(f"{flag}=" for flag in LAUNCH_FLAGS)):
            out.append(arg)
    return out


def launch_command(options: LaunchOptions, program: str, argv: Sequence[str]) -> list[str]:
    """The command that runs ``program argv`` on every rank: this interpreter, ``-m
    torch.distributed.run``, its options, then the program (a Python file) and its arguments less
    the launch options."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *options.torchrun_args(),
        program,
        *rank_argv(argv),
    ]


def relaunch(options: LaunchOptions, argv: Sequence[str] | None = None, program: str | None = None) -> None:
    """Run this command again under ``torchrun`` with ``options`` and wait for every rank.

    ``program`` and ``argv`` default to this process's own (``sys.argv``): the relaunched ranks see
    the same options and, being under the launcher, run the command instead of launching it. Returns
    when every rank exited 0; a failed rank raises :class:`DistributedError` (one line)."""
    program = program if program is not None else sys.argv[0]
    argv = list(sys.argv[1:] if argv is None else argv)
    if not os.path.isfile(program):
        raise UsageError(
            f"cannot relaunch {program!r} under torchrun (not a file); run the 'zoo' command itself"
        )
    env = {**os.environ, "LOGLEVEL": os.environ.get("LOGLEVEL", "ERROR")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    process = subprocess.Popen(
        launch_command(options, program, argv), stderr=subprocess.PIPE, env=env, text=True, bufsize=1
    )
    report = LauncherOutput(sys.stderr)
    reader = threading.Thread(target=report.consume, args=(process.stderr,), daemon=True)
    reader.start()
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
        raise
    reader.join()
    if code != 0:
        raise report.error(code)


_FRAME = re.compile(r"^\s+File \"")
_AGENT_LOG = re.compile(r"^\[?[DIWEF]\d{4} [\d:.]+ \d+ \S*torch/distributed/")
_ROOT = re.compile(r"rank\s*:\s*(\d+)")
_EXIT = re.compile(r"exitcode\s*:\s*(-?\d+)")
_SIGNAL = re.compile(r"Signal (\d+) \((\w+)\)")


class LauncherOutput:
    """Passes the ranks' stderr through and keeps ``torchrun``'s failure report out of it.

    ``torchrun`` ends a failed run with the traceback of its ``ChildFailedError`` and a table naming
    the first failed rank; that block is recognised, parsed (rank, exit code, signal) and dropped, and
    :meth:`error` turns it into one line."""

    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.report: list[str] = []
        self.report_lines: list[str] = []
        self._held: list[str] = []

    def consume(self, stream: IO[str]) -> None:
        """Read ``stream`` to its end (run in a thread)."""
        for line in stream:
            self.feed(line)
        self._flush()

    def feed(self, line: str) -> None:
        if self.report:
            self.report.append(line)
            return
        if _AGENT_LOG.match(line):  # torchrun's own log (a worker failed, the others are stopped)
            self.report_lines.append(line)
            return
        if line.startswith("Traceback (most recent call last):"):
            self._flush()
            self._held.append(line)
            return
        if self._held:
            self._held.append(line)
            if "torch/distributed/run.py" in line or "ChildFailedError" in line:
                self.report, self._held = self._held, []
            elif not _FRAME.match(line) and not line.startswith(" "):
                self._flush()  # a rank's own traceback ended: show it
            return
        self.sink.write(line)
        self.sink.flush()

    def _flush(self) -> None:
        if self._held:
            self.sink.write("".join(self._held))
            self.sink.flush()
            self._held = []

    def error(self, code: int) -> DistributedError:
        """The one-line error of a run that ended with ``code``."""
        text = "".join(self.report_lines + self.report)
        root = text.split("Root Cause", 1)[-1]
        rank = _ROOT.search(root)
        exit_code = _EXIT.search(root)
        signal = _SIGNAL.search(root)
        who = f"rank {rank.group(1)}" if rank else "a rank"
        if signal:
            how = f"was killed by signal {signal.group(2)}"
        elif exit_code:
            how = f"exited with code {exit_code.group(1)} (its message is above)"
        else:
            how = f"failed (torchrun exit code {code}; the message is above)"
        child = int(exit_code.group(1)) if exit_code else 0
        return DistributedError(
            f"distributed run failed: {who} {how}; every rank was stopped",
            exit_code=child if child > 0 else 1,
        )
