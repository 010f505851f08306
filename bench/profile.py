"""Sampling profiles of a running stack process with py-spy, and a text summary of them.

The benchmark attaches ``py-spy record --format raw`` (collapsed stacks, one
``frame;frame;... count`` line per distinct stack) to one process for the measured window
only, so start-up and imports are not in it.

By default only the thread holding the GIL is sampled (``--gil``): that is the Python CPU time
of the process, and the shares add up to it. Without it py-spy also counts threads parked in
C (aiosqlite's and the thread pools' ``queue.get()``) as busy, which hides the real work. What
``--gil`` cannot see: the Temporal SDK's Rust core (its own threads) and C code that releases
the GIL (SQLite's ``sqlite3_step``). The per-process CPU seconds the benchmark prints cover
everything.

``python -m bench.profile STACKS.txt`` summarises a file written earlier.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hub.settings import REPO_ROOT

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy_binary() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy is missing: `.venv/bin/pip install py-spy`")
    return found


@dataclass
class Profiler:
    """``py-spy record`` attached to ``pid`` until :meth:`stop`."""

    pid: int
    output: Path
    rate: int = 100
    native: bool = False
    #: Only the thread holding the GIL (Python CPU time); False samples every non-idle thread.
    gil_only: bool = True
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        argv = [
            py_spy_binary(), "record",
            "--pid", str(self.pid),
            "--rate", str(self.rate),
            "--format", "raw",
            "--output", str(self.output),
            "--full-filenames",
            # Sample without pausing the process, so the profile costs the worker little.
            "--nonblocking",
        ]  # fmt: skip
        if self.native:
            argv.append("--native")
        if self.gil_only:
            argv.append("--gil")
        log = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if self.log and not isinstance(log, int):
                log.close()

    def stop(self, timeout: float = 30.0) -> bool:
        """Ctrl-C to py-spy (it then writes the file); True when the file is there."""
        if self.process is None:
            return False
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.output.exists() and self.output.stat().st_size > 0


# --- Summary ---------------------------------------------------------------------------------


def _where(path: str) -> str:
    """A short name for the code a frame is in: package, repo folder or stdlib module."""
    if "site-packages/" in path:
        part = path.split("site-packages/", 1)[1].split("/", 1)[0]
        return re.sub(r"(\.cpython.*)?\.(py|so)$", "", part)
    root = str(REPO_ROOT) + "/"
    if path.startswith(root):
        return "hub:" + path[len(root) :].split("/", 1)[0].removesuffix(".py")
    match = re.search(r"/lib/python3\.\d+/([^/]+)", path)
    if match:
        return "stdlib:" + match.group(1).removesuffix(".py")
    if path.startswith("<frozen"):
        return "stdlib:importlib"
    return "native" if path else "?"


def _short(function: str, path: str) -> str:
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(REPO_ROOT) + "/"):
        path = path[len(str(REPO_ROOT)) + 1 :]
    else:
        match = re.search(r"/lib/python3\.\d+/(.+)", path)
        path = match.group(1) if match else path
    return f"{function} ({path})"


@dataclass
class ProfileSummary:
    samples: int
    self_by_package: list[tuple[str, int]]
    self_by_function: list[tuple[str, int]]
    inclusive_by_function: list[tuple[str, int]]

    def render(self, rate: int | None = None, top: int = 15) -> str:
        if not self.samples:
            return "no samples"
        pct = 100.0 / self.samples
        seconds = f" = {self.samples / rate:.1f} CPU-s at {rate} Hz" if rate else ""
        lines = [f"{self.samples} on-CPU samples{seconds}", "", "self time by code location:"]
        lines += [f"  {n * pct:5.1f}%  {name}" for name, n in self.self_by_package[:top]]
        lines += ["", "self time by function (leaf frame):"]
        lines += [f"  {n * pct:5.1f}%  {name}" for name, n in self.self_by_function[:top]]
        lines += ["", "inclusive time by function (on the stack):"]
        lines += [f"  {n * pct:5.1f}%  {name}" for name, n in self.inclusive_by_function[:top]]
        return "\n".join(lines)

    def as_dict(self, top: int = 25) -> dict[str, object]:
        return {
            "samples": self.samples,
            "self_by_package": dict(self.self_by_package[:top]),
            "self_by_function": dict(self.self_by_function[:top]),
            "inclusive_by_function": dict(self.inclusive_by_function[:top]),
        }


def summarise(path: Path) -> ProfileSummary:
    """Aggregate py-spy's collapsed stacks (root first, leaf last)."""
    by_package: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            function, file = (match["function"], match["file"]) if match else (frame, "")
            frames.append((function, file))
        leaf_function, leaf_file = frames[-1]
        by_package[_where(leaf_file)] += count
        by_leaf[_short(leaf_function, leaf_file)] += count
        for name in {_short(function, file) for function, file in frames}:
            inclusive[name] += count
    return ProfileSummary(
        samples,
        by_package.most_common(),
        by_leaf.most_common(),
        inclusive.most_common(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("stacks", type=Path, help="py-spy --format raw output")
    parser.add_argument("--rate", type=int, default=None, help="the sampling rate used (Hz)")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    print(summarise(args.stacks).render(args.rate, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
