"""Independent reference for the qMT signal model: full 6-state matrices, one matrix exponential per step, the
free precession and the crushed pulse as plain 6x6 matrices, and the steady cycle from the full 6x6 product."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch

from crbnet.saturation import r2sl

Expm = Callable[[torch.Tensor], torch.Tensor]


def scipy_expm(a: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(scipy.linalg.expm(a.detach().numpy()))


def generator(c: dict, w1: torch.Tensor, R2sl: torch.Tensor) -> torch.Tensor:
    """H of docs/model.md section 1 (6x6) for one interval of constant RF amplitude w1 (rad/s)."""
    m0f = 1 - c["m0s"]
    z = torch.zeros((), dtype=torch.float64)
    b1w1 = c["B1"] * w1
    rows = [
        [-c["R2f"], -c["omega0"], b1w1, z, z, z],
        [c["omega0"], -c["R2f"], z, z, z, z],
        [-b1w1, z, -c["R1f"] - c["Rx"] * c["m0s"], z, c["Rx"] * m0f, c["R1f"] * m0f],
        [z, z, z, -R2sl, b1w1, z],
        [z, z, c["Rx"] * c["m0s"], -b1w1, -c["R1s"] - c["Rx"] * m0f, c["R1s"] * c["m0s"]],
        [z, z, z, z, z, z],
    ]
    return torch.stack([torch.stack([torch.as_tensor(e, dtype=torch.float64) for e in r]) for r in rows])


def signal(c: dict, alpha: np.ndarray, TRF: np.ndarray, crushed: np.ndarray, TR: float,
           expm: Expm = scipy_expm) -> torch.Tensor:
    """Complex samples xf + i yf after every repetition of one periodic pattern (M0 = 1)."""
    kill_xs = torch.diag(torch.tensor([1.0, 1, 1, 0, 1, 1], dtype=torch.float64))
    rz = torch.diag(torch.tensor([-1.0, -1, 1, 1, 1, 1], dtype=torch.float64))
    zero = torch.zeros((), dtype=torch.float64)

    def ufp(t: float) -> torch.Tensor:
        return kill_xs @ expm(generator(c, zero, zero) * t)

    steps = []
    for a, trf, crush in zip(alpha, TRF, crushed):
        a, trf = torch.tensor(a, dtype=torch.float64), torch.tensor(trf, dtype=torch.float64)
        rate = r2sl(trf, a, c["B1"], c["T2s"])
        if crush:
            nut = c["B1"] * a
            semi = expm(torch.stack([torch.stack([-rate, nut / trf]), torch.stack([-nut / trf, zero])]) * trf)
            u = torch.diag(torch.stack([torch.sin(nut / 2) ** 2, -torch.sin(nut / 2) ** 2, torch.cos(nut),
                                        zero + 1, zero + 1, zero + 1]))
            u = u.index_put((torch.tensor([3, 3, 4, 4]), torch.tensor([3, 4, 3, 4])), semi.reshape(-1))
            steps.append(ufp(TR / 2) @ u @ rz @ ufp(TR / 2))
        else:
            t = (TR - float(trf)) / 2
            steps.append(ufp(t) @ expm(generator(c, a / trf, rate) * trf) @ rz @ ufp(t))
    cycle = torch.eye(6, dtype=torch.float64)
    for p in steps[1:] + steps[:1]:
        cycle = p @ cycle
    lhs = cycle - torch.diag(torch.tensor([1.0, 1, 1, 1, 1, 0], dtype=torch.float64))
    m = torch.linalg.solve(lhs, torch.tensor([0.0, 0, 0, 0, 0, 1], dtype=torch.float64))
    out = [m]
    for p in steps[1:]:
        out.append(p @ out[-1])
    states = torch.stack(out)
    return torch.complex(states[:, 0], states[:, 1])
