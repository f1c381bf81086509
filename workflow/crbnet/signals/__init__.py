"""Signal models: the hybrid-state qMT model (qmt) and MRF-FISP with extended phase graphs (fisp)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from crbnet.parameters import ParameterError, Parameterization, get_parameterization
from crbnet.sequences import FISPSequence, QMTSequence


KERNELS = ("auto", "numba", "torch")


def kernel_choice(kernel: str, env: str) -> str:
    """The constructor's kernel, else the environment variable ``env``, else auto; a ValueError names the allowed
    values."""
    from_env = os.environ.get(env) or "auto"
    for source, name in (("kernel", kernel), (env, from_env)):
        if name not in KERNELS:
            raise ValueError(f"{source}={name!r} is not a kernel; choose one of {', '.join(KERNELS)}")
    return kernel if kernel != "auto" else from_env


def takes_numba(kernel: str, device: torch.device, values: Mapping[str, torch.Tensor]) -> bool:
    """Whether a model with this kernel choice runs its numba kernel for these values: always for ``numba``, for
    ``auto`` on a CPU unless an input requires grad; ``numba`` with an input that requires grad is a ValueError."""
    grad = any(v.requires_grad for v in values.values())
    if kernel == "numba" and grad:
        raise ValueError("a numba kernel cannot be differentiated with autograd (an input requires grad); "
                         "use kernel='torch' or 'auto'")
    return kernel == "numba" or (kernel == "auto" and device.type == "cpu" and not grad)


def default_parameterization(sequence: QMTSequence | FISPSequence) -> Parameterization | None:
    """``fisp`` for MRF-FISP sequences; None for qMT, where the parameter names decide."""
    return get_parameterization("fisp") if isinstance(sequence, FISPSequence) else None


def signal_model_for(sequence: QMTSequence | FISPSequence, parameterization: Parameterization,
              device: torch.device | str = "cpu"):
    """The signal model of the sequence's kind in ``parameterization``; a clear error for a mismatch."""
    from crbnet.signals.fisp import FISPSignalModel
    from crbnet.signals.qmt import QMTSignalModel

    fisp = isinstance(sequence, FISPSequence)
    if fisp != (parameterization.name == "fisp"):
        raise ParameterError(f"a {sequence.kind} sequence cannot be simulated in the {parameterization.name} "
                             f"parameterization")
    return (FISPSignalModel if fisp else QMTSignalModel)(sequence, parameterization, device)
