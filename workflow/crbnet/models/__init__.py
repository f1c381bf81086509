"""Signal models: the hybrid-state qMT model (qmt) and MRF-FISP with extended phase graphs (fisp)."""

from __future__ import annotations

import torch

from crbnet.parameters import ParameterError, Parameterization, get_parameterization
from crbnet.sequences import FISPSequence, QMTSequence


def default_parameterization(sequence: QMTSequence | FISPSequence) -> Parameterization | None:
    """``fisp`` for MRF-FISP sequences; None for qMT, where the parameter names decide."""
    return get_parameterization("fisp") if isinstance(sequence, FISPSequence) else None


def model_for(sequence: QMTSequence | FISPSequence, parameterization: Parameterization,
              device: torch.device | str = "cpu"):
    """The signal model of the sequence's kind in ``parameterization``; a clear error for a mismatch."""
    from crbnet.models.fisp import FISPModel
    from crbnet.models.qmt import QMTModel

    fisp = isinstance(sequence, FISPSequence)
    if fisp != (parameterization.name == "fisp"):
        raise ParameterError(f"a {sequence.kind} sequence cannot be simulated in the {parameterization.name} "
                             f"parameterization")
    return (FISPModel if fisp else QMTModel)(sequence, parameterization, device)
