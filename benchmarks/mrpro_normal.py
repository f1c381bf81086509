"""Our subspace normal operator (crbnet.recon.SubspaceNormal) against mrpro's (issue 28, item 2).

mrpro (PyTorch; not a dependency of crbnet: install it beside, e.g. ``pip install --target DIR mrpro`` and set
PYTHONPATH=DIR) has the Toeplitz Gram operator of its non-uniform FFT with a temporal subspace,
``NonUniformFastFourierOp.toeplitz(subspace=U)``. For S the coil sensitivities, c -> sum_coils S^H G (S c) is our
normal operator times its scale. This script

1. checks that the two agree (relative difference of the outputs for random coefficient images) on even and odd
   grids (``--shapes``), with mrpro in float64 and ours as in the workflow (complex64 kernels), and mrpro's plain
   Toeplitz Gram operator against its own NUFFT adjoint after its forward (ours is checked against an explicit
   non-uniform DFT in tests/test_recon.py);
2. times both on the default brain slice's geometry (197 x 233, 1,142 frames of 1 golden-angle spoke of 466
   samples, rank 13, 8 coils): the Toeplitz kernels over ``--frames`` frames (mrpro: extrapolated to all frames,
   its kernel is a sum over frames) and one application of the normal operator.

Prints the figures with the CPU; the last line is ``max_rel_diff=<d> build_s_ours=<a> build_s_mrpro=<b>
apply_s_ours=<c> apply_s_mrpro=<e>``.

    PYTHONPATH=/tmp/mrpro_site python benchmarks/mrpro_normal.py [--frames 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from crbnet.acquisition import coil_sensitivities, radial_trajectory
from crbnet.recon import SubspaceNormal
from crbnet.runtime import cpu_description


def problem(shape: tuple[int, int], frames: int, r: int, coils: int, seed: int = 0):
    """Trajectory (frames, 1, readout, 2), orthonormal basis (frames, r), sensitivities and random images (r, X, Y)."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((frames, r)) + 1j * rng.standard_normal((frames, r)))[0]
    c = rng.standard_normal((r, *shape)) + 1j * rng.standard_normal((r, *shape))
    return radial_trajectory(frames, 1, 2 * max(shape)), U, coil_sensitivities(shape, coils), c


def import_mrpro() -> None:
    """Import mrpro. It imports torchvision when it loads (for its BrainWeb phantom only), and the PyPI wheel of
    torchvision 0.28.0 is CUDA torch's: with torch 2.13.0+cpu it fails ("operator torchvision::nms does not
    exist"). Then an empty torchvision module stands in; none of the operators used here needs it."""
    import sys
    import types

    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError) as error:
        print(f"torchvision does not load ({error}); an empty module stands in for mrpro's import")
        for name in [n for n in sys.modules if n.startswith("torchvision")]:
            del sys.modules[name]
        stub = types.ModuleType("torchvision")
        stub.transforms = types.SimpleNamespace(functional=None, InterpolationMode=None)
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = stub, stub.transforms
        sys.modules["torchvision.transforms.functional"] = types.ModuleType("torchvision.transforms.functional")
    import mrpro  # noqa: F401


def mrpro_normal(trajectory: np.ndarray, U: np.ndarray, maps: np.ndarray, dtype=torch.float64):
    """c (r, X, Y) -> sum_coils conj(S) G(S c) with mrpro's subspace Toeplitz Gram operator G."""
    import_mrpro()
    from mrpro.data import KTrajectory
    from mrpro.operators import NonUniformFastFourierOp

    shape = maps.shape[1:]
    # ours: rad per voxel along (X, Y); mrpro: k in cycles per field of view along (y, x), (other, coil, k2, k1, k0)
    ky, kx = (torch.as_tensor(trajectory[..., i] * n / (2 * np.pi), dtype=dtype)[:, None, None]
              for i, n in enumerate(shape))
    traj = KTrajectory(torch.zeros_like(ky[..., :1, :1]), ky, kx, repeat_detection_tolerance=None)
    nufft = NonUniformFastFourierOp(("y", "x"), list(shape), list(shape), traj)
    gram = nufft.toeplitz(subspace=torch.as_tensor(U, dtype=dtype.to_complex()), subspace_dim=0)
    S = torch.as_tensor(maps, dtype=dtype.to_complex())[:, None]  # (coils, 1, X, Y)

    def apply(c: torch.Tensor) -> torch.Tensor:
        return (S[:, 0].conj() * gram(S * c[:, None, None])[0][:, :, 0]).sum(dim=1)  # (r, coils, 1, X, Y) in

    return apply


def mrpro_self_consistency(shape: tuple[int, int]) -> float:
    """Relative difference of mrpro's Toeplitz Gram operator (no subspace) from its own NUFFT adjoint after its
    forward, for one frame of 8 spokes and a random image."""
    import_mrpro()
    from mrpro.data import KTrajectory
    from mrpro.operators import NonUniformFastFourierOp

    trajectory = radial_trajectory(1, 8, 2 * max(shape))[0]
    ky, kx = (torch.as_tensor(trajectory[..., i] * n / (2 * np.pi), dtype=torch.float64)[None, None, None]
              for i, n in enumerate(shape))
    nufft = NonUniformFastFourierOp(("y", "x"), list(shape), list(shape),
                                    KTrajectory(torch.zeros_like(ky[..., :1, :1]), ky, kx, repeat_detection_tolerance=None))
    x = torch.as_tensor(problem(shape, 1, 1, 1)[3], dtype=torch.complex128)[None, None]  # (1, 1, 1, X, Y)
    direct = nufft.H(nufft(x)[0])[0]
    return float((nufft.gram(x)[0] - direct).norm() / direct.norm())


def agreement(shape: tuple[int, int]) -> float:
    trajectory, U, maps, c = problem(shape, frames=24, r=4, coils=3)
    ours = SubspaceNormal.build(trajectory, U, maps, torch.device("cpu"))
    theirs = mrpro_normal(trajectory, U, maps)
    a = (ours(torch.as_tensor(c, dtype=torch.complex64)) * ours.scale).numpy()
    b = theirs(torch.as_tensor(c)).numpy()
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="12x10,11x9,13x16,24x24")
    parser.add_argument("--frames", type=int, default=32, help="frames of the brain geometry timed for the kernels")
    args = parser.parse_args()
    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    worst = 0.0
    for text in args.shapes.split(","):
        shape = tuple(int(n) for n in text.split("x"))
        diff = agreement(shape)
        worst = max(worst, diff)
        print(f"{shape}: relative difference ours vs mrpro {diff:.2e}; mrpro's Toeplitz Gram vs its adjoint after "
              f"its forward {mrpro_self_consistency(shape):.2e}")

    shape, frames, r, coils = (197, 233), 1142, 13, 8
    trajectory, U, maps, c = problem(shape, frames, r, coils)
    part = slice(0, args.frames)
    tic = time.perf_counter()
    ours = SubspaceNormal.build(trajectory[part], U[part], maps, torch.device("cpu"))
    build_part = time.perf_counter() - tic
    tic = time.perf_counter()
    ours = SubspaceNormal.build(trajectory, U, maps, torch.device("cpu"))
    build_ours = time.perf_counter() - tic
    tic = time.perf_counter()
    theirs = mrpro_normal(trajectory[part], U[part], maps, torch.float32)
    build_mrpro = (time.perf_counter() - tic) * frames / args.frames
    x = torch.as_tensor(c, dtype=torch.complex64)
    ours(x), theirs(x)  # warm-up
    timings = {}
    for name, op in (("ours", ours), ("mrpro", theirs)):
        tic = time.perf_counter()
        for _ in range(3):
            op(x)
        timings[name] = (time.perf_counter() - tic) / 3
    print(f"brain geometry {shape}, {frames} frames x 1 spoke, rank {r}, {coils} coils: kernels ours {build_ours:.1f} s "
          f"({build_part:.1f} s for {args.frames} frames), mrpro {build_mrpro:.0f} s (extrapolated from "
          f"{args.frames} frames); one application ours {timings['ours']:.2f} s, mrpro {timings['mrpro']:.2f} s "
          f"(float32, coils as a batch)")
    print(f"max_rel_diff={worst:.2e} build_s_ours={build_ours:.3g} build_s_mrpro={build_mrpro:.3g} "
          f"apply_s_ours={timings['ours']:.3g} apply_s_mrpro={timings['mrpro']:.3g}")


if __name__ == "__main__":
    main()
