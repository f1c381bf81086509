"""Run-time plumbing shared by the CLI and the workflow scripts: progress bars, log redirection, the CPU's name and
flags. Torch-free (devices and precision: crbnet.devices), so that the plotting environment needs no torch."""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def cpu_description() -> str:
    """This CPU's model name and its vector extensions that matter here, e.g. 'AMD EPYC (AVX2, AVX512F,
    AVX512-BF16)', for every measured figure."""
    cpu = ""
    try:
        cpu = next((ln.partition(":")[2].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    named = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
    flags = [label for flag, label in named.items() if flag in cpu_flags()]
    return f"{cpu or platform.processor() or 'unknown CPU'} ({', '.join(flags) or 'no AVX2'})"


def progress(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar on the current stderr; in a log file (not a terminal) it writes at most every 30 s."""
    return tqdm(iterable, file=sys.stderr, mininterval=0.1 if sys.stderr.isatty() else 30.0, **kwargs)


def configure_logging(stream=None) -> None:
    """The library reports through ``logging`` (logger ``crbnet``); the CLI and the workflow scripts send its INFO
    and above, message only, to ``stream`` (default stderr)."""
    logging.basicConfig(stream=stream or sys.stderr, level=logging.WARNING, format="%(message)s", force=True)
    logging.getLogger("crbnet").setLevel(logging.INFO)


@contextlib.contextmanager
def logged(path: str | Path, threads: int | None = None) -> Iterator[None]:
    """Send stdout and stderr (progress bars included) to ``path``, ending with the wall time; limit torch, where the
    script imported it, to ``threads`` CPU threads."""
    torch = sys.modules.get("torch")
    if threads and torch is not None:
        torch.set_num_threads(threads)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        configure_logging(log)
        try:
            yield
            where = f" on {torch.get_num_threads()} threads" if torch is not None else ""
            print(f"done in {time.perf_counter() - start:.1f} s{where}")
        except Exception:
            import traceback

            traceback.print_exc(file=log)
            raise
