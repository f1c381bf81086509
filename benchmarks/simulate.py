"""Signal and Jacobian throughput of the qMT signal model on the default sequence.

Times the signal model as ``QMTSignalModel`` picks its kernel (numba on a CPU, torch on a GPU), the torch path, and the plain
route (``torch.linalg.matrix_exp`` per pulse, forward-mode AD with ``torch.func.jacfwd``) on 2 fingerprints; prints
the numba kernel's first-call time (compilation or on-disk cache) and optionally the peak resident memory of
simulating ``--n-memory`` fingerprints in chunks. The last line reads ``signal_ms_per_fp=<x> jacobian_ms_per_fp=<y>
naive_ratio=<z>`` (per 1142-pulse fingerprint; Jacobian over the 8 canonical parameters, signal included; the
ratio is the plain route's time for signal + Jacobian over the model's).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from crbnet.signals import qmt_kernel
from crbnet.signals.qmt import QMTSignalModel
from crbnet.parameters import CANONICAL, PARAMETERIZATIONS, ParameterSpace
from crbnet.devices import pick_device
from crbnet.saturation import r2sl
from crbnet.sequences import QMTSequence, load_sequence
from crbnet.simulation import chunks

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "parameterization": "canonical",
    "parameters": {
        "m0s": {"dist": "uniform", "lower": 0.05, "upper": 0.3}, "R1f": {"dist": "uniform", "lower": 0.3, "upper": 1.0},
        "R2f": {"dist": "uniform", "lower": 8, "upper": 20}, "Rx": {"dist": "uniform", "lower": 5, "upper": 40},
        "R1s": {"dist": "uniform", "lower": 1, "upper": 5}, "T2s": {"dist": "uniform", "lower": 6e-6, "upper": 20e-6},
        "omega0": {"dist": "uniform", "lower": -900, "upper": 900}, "B1": {"dist": "uniform", "lower": 0.7, "upper": 1.2},
    },
}


def _time(fn, repeats: int = 2) -> float:
    fn()  # warm-up (torch.func tracing, table cache, numba compilation)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _generator(c: dict[str, torch.Tensor], nut: torch.Tensor, rate: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """H * t of docs/model.md section 1 for every interval, (N, 6, 6): nutation B1 w1 t, semi-solid decay R2sl t."""
    m0f, z = 1 - c["m0s"], torch.zeros_like(t)
    kf, kr = c["Rx"] * c["m0s"], c["Rx"] * m0f
    rows = [[-c["R2f"] * t, -c["omega0"] * t, nut, z, z, z],
            [c["omega0"] * t, -c["R2f"] * t, z, z, z, z],
            [-nut, z, -(c["R1f"] + kf) * t, z, kr * t, c["R1f"] * m0f * t],
            [z, z, z, -rate, nut, z],
            [z, z, kf * t, -nut, -(c["R1s"] + kr) * t, c["R1s"] * c["m0s"] * t],
            [z, z, z, z, z, z]]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def plain_samples(theta: torch.Tensor, sequence: QMTSequence) -> torch.Tensor:
    """The plain route for one fingerprint (canonical parameters theta, (8,)): full 6x6 repetition matrices with
    ``torch.linalg.matrix_exp`` per pulse and per free interval, sequential products; (xf, yf) samples (Ns, 2)."""
    c = dict(zip(CANONICAL, theta))
    kill_xs = torch.diag(torch.tensor([1.0, 1, 1, 0, 1, 1], dtype=torch.float64))
    rz = torch.diag(torch.tensor([-1.0, -1, 1, 1, 1, 1], dtype=torch.float64))
    out = []
    for p in sequence.patterns:
        alpha, TRF = torch.as_tensor(p.alpha), torch.as_tensor(p.TRF)
        crushed = torch.as_tensor(p.crushed)[:, None, None]
        nut, rate = c["B1"] * alpha, r2sl(TRF, alpha, c["B1"], c["T2s"]) * TRF
        pulse = torch.linalg.matrix_exp(_generator(c, nut, rate, TRF))
        zero = torch.zeros_like(TRF)
        semi = torch.linalg.matrix_exp(_generator({**c, "R1f": 0 * c["R1f"], "R2f": 0 * c["R2f"], "R1s": 0 * c["R1s"],
                                                   "Rx": 0 * c["Rx"], "omega0": 0 * c["omega0"]}, nut, rate, zero))
        spoil = torch.diag_embed(torch.stack([torch.sin(nut / 2) ** 2, -torch.sin(nut / 2) ** 2, torch.cos(nut),
                                              zero, zero, zero + 1], -1))
        keep = torch.tensor([0.0, 0, 0, 1, 1, 0], dtype=torch.float64)
        pulse = torch.where(crushed, spoil + keep[:, None] * semi * keep, pulse)  # semi-solid block of the exponential
        t_free = torch.where(crushed[:, 0, 0], torch.full_like(TRF, sequence.TR / 2), (sequence.TR - TRF) / 2)
        free = kill_xs @ torch.linalg.matrix_exp(_generator(c, zero, zero, t_free))
        steps = free @ pulse @ rz @ free
        cycle = torch.eye(6, dtype=torch.float64)
        for step in [*steps[1:], steps[0]]:
            cycle = step @ cycle
        boundary = torch.diag(torch.tensor([1.0, 1, 1, 1, 1, 0], dtype=torch.float64))
        m = torch.linalg.solve(cycle - boundary, torch.tensor([0.0, 0, 0, 0, 0, 1], dtype=torch.float64))
        states = [m]
        for step in steps[1:]:
            states.append(step @ states[-1])
        out.append(torch.stack(states)[:, :2])
    return torch.cat(out)


def _plain_jacobian(values: dict[str, np.ndarray], sequence: QMTSequence) -> tuple[np.ndarray, np.ndarray]:
    """Signal (B, Ns) and Jacobian (B, Ns, 8) of the plain route, one fingerprint after the other."""
    signals, jacobians = [], []
    for b in range(len(values["m0s"])):
        theta = torch.tensor([values[n][b] for n in CANONICAL], dtype=torch.float64)
        xy = plain_samples(theta, sequence)
        jac = torch.func.jacfwd(lambda x: plain_samples(x, sequence))(theta)  # (Ns, 2, 8)
        signals.append(torch.complex(xy[:, 0], xy[:, 1]).numpy())
        jacobians.append(torch.complex(jac[:, 0], jac[:, 1]).numpy())
    return np.stack(signals), np.stack(jacobians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="fingerprints per timed signal batch")
    parser.add_argument("--jacobian-batch", type=int, default=32, help="fingerprints per timed Jacobian batch")
    parser.add_argument("--torch-batch", type=int, default=16, help="fingerprints per timed batch of the torch path")
    parser.add_argument("--n-memory", type=int, default=0, help="also simulate this many fingerprints, chunked")
    args = parser.parse_args()
    device = pick_device("auto")
    pz = PARAMETERIZATIONS["canonical"]
    sequence = load_sequence(ROOT / "config/sequences/hybrid_state_default.yaml")
    signal_model = QMTSignalModel(sequence, pz, device)
    space = ParameterSpace.from_config(SPACE)
    values = space.sample(args.batch, seed=0)
    small = {k: v[: args.jacobian_batch] for k, v in values.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    kernel = "numba" if signal_model.uses_numba({k: torch.as_tensor(v) for k, v in small.items()}) else "torch"
    print(f"device={device} threads={torch.get_num_threads()} kernel={kernel} batch={args.batch} "
          f"jacobian_batch={args.jacobian_batch}")
    if kernel == "numba":
        start = time.perf_counter()
        signal_model.simulate({k: v[:1] for k, v in values.items()}, pz.names)
        stats = qmt_kernel.simulate.stats
        print(f"numba first call {time.perf_counter() - start:.1f} s "
              f"({'on-disk cache' if sum(stats.cache_hits.values()) else 'compiled'}, cache {stats.cache_path})")
    signal_s = _time(lambda: (signal_model.signal(values), sync()))
    jacobian_s = _time(lambda: (signal_model.simulate(small, pz.names), sync()), repeats=1)
    signal_ms, jacobian_ms = signal_s / args.batch * 1e3, jacobian_s / args.jacobian_batch * 1e3
    if kernel == "numba":
        reference = QMTSignalModel(sequence, pz, device, kernel="torch")
        few = {k: v[: args.torch_batch] for k, v in values.items()}
        torch_signal = _time(lambda: reference.signal(few), repeats=1) / args.torch_batch * 1e3
        torch_jacobian = _time(lambda: reference.simulate(few, pz.names), repeats=1) / args.torch_batch * 1e3
        print(f"torch path: signal_ms_per_fp={torch_signal:.3f} jacobian_ms_per_fp={torch_jacobian:.3f} "
              f"(numba speed-up {torch_signal / signal_ms:.1f}x signal, {torch_jacobian / jacobian_ms:.1f}x Jacobian)")
    two = {k: v[:2] for k, v in values.items()}
    start = time.perf_counter()
    plain_s, plain_jac = _plain_jacobian(two, sequence)
    plain_ms = (time.perf_counter() - start) / 2 * 1e3
    s, jac = signal_model.simulate(two, pz.names)
    scale = np.abs(plain_jac).max(axis=1, keepdims=True)
    agreement = (np.abs(jac.cpu().numpy() - plain_jac) / scale).max()
    print(f"plain route (matrix_exp + jacfwd, 2 fingerprints): {plain_ms:.0f} ms per fingerprint; "
          f"largest Jacobian difference to the signal model {agreement:.1e} of each column's largest entry")
    if args.n_memory:
        start = time.perf_counter()
        for _ in chunks(signal_model, space.sample(args.n_memory, seed=1), ()):
            pass
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"simulated {args.n_memory} fingerprints in {time.perf_counter() - start:.1f} s, peak RSS {peak_mb:.0f} MB")
    ratio = plain_ms / jacobian_ms
    print(f"signal_ms_per_fp={signal_ms:.3f} jacobian_ms_per_fp={jacobian_ms:.3f} naive_ratio={ratio:.1f}")


if __name__ == "__main__":
    main()
