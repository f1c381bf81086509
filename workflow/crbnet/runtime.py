"""Run-time plumbing shared by the CLI and the workflow scripts: device choice, progress bars, log redirection."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm


def pick_device(request: str = "auto", gpus: int = 1) -> torch.device:
    """CUDA when requested or available (and ``gpus > 0``), else CPU; an explicit 'cuda' without CUDA fails."""
    if request == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    if request in ("auto", "cuda") and gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def progress(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar on the current stderr; in a log file (not a terminal) it writes at most every 30 s."""
    return tqdm(iterable, file=sys.stderr, mininterval=0.1 if sys.stderr.isatty() else 30.0, **kwargs)


@contextlib.contextmanager
def logged(path: str | Path, threads: int | None = None) -> Iterator[None]:
    """Send stdout and stderr (progress bars included) to ``path``, ending with the wall time; limit torch to
    ``threads`` CPU threads."""
    if threads:
        torch.set_num_threads(threads)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
            print(f"done in {time.perf_counter() - start:.1f} s on {torch.get_num_threads()} threads")
        except Exception:
            import traceback

            traceback.print_exc(file=log)
            raise
