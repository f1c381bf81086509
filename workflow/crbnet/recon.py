"""Subspace reconstruction of coefficient images from multi-coil non-Cartesian k-space.

c = argmin_c 1/2 ||F S U c - y||^2 / d + lambda sum_b ||C_b||_*: U the temporal basis (frames, r), S the coil
sensitivities, F the per-frame NUFFT (``crbnet.acquisition``), C_b the (voxels, r) matrix of block b
(locally low rank), d the mean diagonal of the normal operator, so that lambda is in units of coefficient amplitude.
The normal operator is applied with FFTs through Toeplitz embedding (one kernel per pair of basis functions, computed
once with FINUFFT), in torch on the CPU or a GPU. lambda = 0: conjugate gradients on the normal equations; lambda >
0: ADMM with CG for the linear step and singular-value soft-thresholding for the blocks.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from crbnet.acquisition import AcquisitionError, KSpace, estimate_coil_maps, nufft_adjoint, per_sample
from crbnet.basis import Basis
from crbnet.io.cfl import read_cfl, write_cfl
from crbnet.runtime import progress
from crbnet.tables import coefficient_errors


@dataclass
class SubspaceNormal:
    """The normal operator c -> U^H S^H F^H F S U c on coefficient images (r, X, Y) by Toeplitz embedding, scaled
    by 1/``scale`` (the mean diagonal) so that its eigenvalues average about 1."""

    kernels: torch.Tensor      # (r, r, 2X, 2Y) FFTs of the circulant-embedded kernels
    coil_maps: torch.Tensor    # (coils, X, Y)
    scale: float

    @classmethod
    def build(cls, trajectory: np.ndarray, U: np.ndarray, coil_maps: np.ndarray, device: torch.device) -> SubspaceNormal:
        """Kernels K_kl(d) = sum_j conj(U[t_j, k]) U[t_j, l] exp(i k_j . d) / (X Y) on the offsets d of a 2X x 2Y
        grid, for positions ``trajectory`` (frames, spokes, readout, 2) and basis U (frames, r)."""
        frames = trajectory.shape[0]
        if U.shape[0] != frames:
            raise AcquisitionError(f"the basis has {U.shape[0]} time points, the k-space {frames} frames")
        shape = coil_maps.shape[1:]
        r = U.shape[1]
        Uj = per_sample(U.T, trajectory)  # (r, M)
        points, big = trajectory.reshape(-1, 2), [2 * n for n in shape]
        upper = [(k, m) for k in range(r) for m in range(k, r)]
        # one row k at a time (r NUFFTs of M weights at most); nufft_adjoint divides by sqrt(4 X Y), the kernel
        # needs 1 / (X Y)
        grid = np.concatenate([nufft_adjoint(Uj[k].conj() * Uj[k:], points, big) for k in range(r)])
        grid *= 2 / np.sqrt(np.prod(shape))
        spectra = np.fft.fft2(np.fft.ifftshift(grid, axes=(-2, -1)))
        kernels = np.empty((r, r, *spectra.shape[-2:]), dtype=np.complex64)
        for (k, m), spectrum in zip(upper, spectra):
            kernels[k, m] = spectrum
            kernels[m, k] = spectrum.conj()  # K_mk(d) = conj(K_km(-d))
        scale = float(np.mean([kernels[k, k].real.mean() for k in range(r)]))  # K_kk(0), sum |S|^2 = 1
        return cls(torch.as_tensor(kernels, device=device), torch.as_tensor(coil_maps.astype(np.complex64), device=device),
                   scale)

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        X, Y = c.shape[-2:]
        coil_images = self.coil_maps[:, None] * c[None]  # (coils, r, X, Y)
        spectra = torch.fft.fft2(coil_images, s=(2 * X, 2 * Y))
        mixed = torch.einsum("klxy,clxy->ckxy", self.kernels, spectra)
        back = torch.fft.ifft2(mixed)[..., :X, :Y]
        return (self.coil_maps[:, None].conj() * back).sum(dim=0) / self.scale


def adjoint_coefficients(kspace: np.ndarray, trajectory: np.ndarray, U: np.ndarray, coil_maps: np.ndarray) -> np.ndarray:
    """U^H S^H F^H y: coefficient images (r, X, Y) of k-space (coils, frames, spokes, readout)."""
    coils = len(kspace)
    if coils != len(coil_maps):
        raise AcquisitionError(f"the k-space has {coils} coils, the sensitivities {len(coil_maps)}")
    Uj = per_sample(U.T.conj(), trajectory)  # (r, M)
    points = trajectory.reshape(-1, 2)
    out = np.zeros((U.shape[1], *coil_maps.shape[1:]), dtype=np.complex128)
    for data, sensitivity in zip(kspace.reshape(coils, -1), coil_maps):
        out += sensitivity.conj() * nufft_adjoint(Uj * data, points, coil_maps.shape[1:])
    return out


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x: torch.Tensor,
                       iterations: int, tol: float = 1e-6,
                       callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Solve apply(x) = b for a Hermitian positive-definite ``apply`` from ``x``; stop at ||r|| <= tol ||b||.
    ``callback(k, x)`` sees the iterate after each step k = 1, 2, ... (e.g. to follow the error over steps)."""
    r = b - apply(x)
    p = r.clone()
    rr = torch.vdot(r.flatten(), r.flatten()).real
    stop = tol**2 * torch.vdot(b.flatten(), b.flatten()).real
    for step in range(iterations):
        if rr <= stop:
            break
        Ap = apply(p)
        alpha = rr / torch.vdot(p.flatten(), Ap.flatten()).real
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = torch.vdot(r.flatten(), r.flatten()).real
        p = r + (rr_new / rr) * p
        rr = rr_new
        if callback is not None:
            callback(step + 1, x)
    return x


def llr_threshold(c: torch.Tensor, threshold: float, block: int, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Soft-threshold the singular values of every ``block`` x ``block`` (voxels x r) matrix of coefficient images
    (r, X, Y), the block grid shifted (circularly) by ``shift``; the proximal operator of threshold * sum ||C_b||_*."""
    r, X, Y = c.shape
    px, py = -X % block, -Y % block
    rolled = torch.nn.functional.pad(torch.roll(c, shift, dims=(1, 2)), (0, py, 0, px))
    nx, ny = rolled.shape[1] // block, rolled.shape[2] // block
    blocks = rolled.reshape(r, nx, block, ny, block).permute(1, 3, 2, 4, 0).reshape(nx * ny, block * block, r)
    u, s, vh = torch.linalg.svd(blocks, full_matrices=False)
    shrunk = (u * torch.clamp(s - threshold, min=0).to(u.dtype)[:, None, :]) @ vh
    back = shrunk.reshape(nx, ny, block, block, r).permute(4, 0, 2, 1, 3).reshape(r, nx * block, ny * block)
    return torch.roll(back[:, :X, :Y], (-shift[0], -shift[1]), dims=(1, 2))


def reconstruct(kspace: np.ndarray, trajectory: np.ndarray, U: np.ndarray, coil_maps: np.ndarray,
                lam: float = 0.0, iterations: int = 20, cg_iterations: int = 5, block: int = 8, seed: int = 0,
                device: torch.device | str = "cpu", show_progress: bool = False, checkpoints: Sequence[int] = (),
                on_checkpoint: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Coefficient images (X, Y, r) complex64 from k-space (coils, frames, spokes, readout) on ``trajectory``
    (frames, spokes, readout, 2), basis U (frames, r) and sensitivities (coils, X, Y): CG (``iterations`` *
    ``cg_iterations`` steps) when ``lam`` is 0, else ``iterations`` ADMM steps of ``cg_iterations`` CG steps with
    locally low-rank blocks shifted at random (seeded) each step. ``show_progress``: timed steps on stderr.

    CG only: ``on_checkpoint(k, images)`` sees the iterate (X, Y, r) after each step k of ``checkpoints``; CG then
    runs on to the last checkpoint and still returns the iterate of its own step count (a CG that converged
    earlier gives its final iterate to the remaining checkpoints)."""
    if not np.all(np.isfinite(kspace)):
        raise AcquisitionError("the k-space holds NaN or infinite samples")
    if lam < 0:
        raise AcquisitionError(f"the regularization weight must be >= 0, got {lam}")
    if checkpoints and lam > 0:
        raise AcquisitionError("checkpoints follow plain CG (lambda 0), not locally low rank")
    device = torch.device(device)
    bar = progress(total=iterations + 2, desc="reconstruct", unit="step", disable=not show_progress)
    normal = SubspaceNormal.build(trajectory, U, coil_maps, device)
    bar.update()
    b = torch.as_tensor(adjoint_coefficients(kspace, trajectory, U, coil_maps).astype(np.complex64),
                        device=device) / normal.scale
    bar.update()
    x = torch.zeros_like(b)
    if lam == 0:
        steps, marks, seen = iterations * cg_iterations, sorted(set(checkpoints)), {"k": 0}

        def record(k: int, iterate: torch.Tensor) -> None:
            seen["k"] = k
            if k == steps:
                seen["x"] = iterate
            if on_checkpoint is not None and k in marks:
                on_checkpoint(k, iterate.permute(1, 2, 0).cpu().numpy())

        last = conjugate_gradient(normal, b, x, max([steps, *marks]), callback=record)
        for k in marks if on_checkpoint is not None else ():
            if k > seen["k"]:  # converged before step k
                on_checkpoint(k, last.permute(1, 2, 0).cpu().numpy())
        x = seen.get("x", last)
        bar.update(iterations)
    else:
        rng = np.random.default_rng(seed)
        z, u = x.clone(), x.clone()
        for _ in range(iterations):  # ADMM with rho = 1 (the normal operator's mean diagonal)
            x = conjugate_gradient(lambda v: normal(v) + v, b + z - u, x, cg_iterations)
            z = llr_threshold(x + u, lam, block, tuple(int(s) for s in rng.integers(0, block, size=2)))
            u = u + x - z
            bar.update()
        x = z
    bar.close()
    return x.permute(1, 2, 0).cpu().numpy()


def reconstruct_bart(kspace: np.ndarray, trajectory: np.ndarray, U: np.ndarray, coil_maps: np.ndarray,
                     lam: float = 0.0, iterations: int = 100, block: int = 8) -> np.ndarray:
    """The same reconstruction by BART's ``pics -B`` (the field's reference; Debian package ``bart``): l2 with
    weight 0 when ``lam`` is 0, else locally low rank by ADMM (``-m -R L:3:3:lam``, BART's own scaling of lambda).
    BART's NUFFT puts the centre of an odd axis of length N at N/2, not at N // 2, and is wrong on odd grids, so an
    odd axis is padded by one voxel of zero sensitivity in front (which keeps our centre) and cropped after, and
    the result is rescaled by BART's normalization of the padded grid. Returns coefficient images (X, Y, r)
    complex64."""
    if shutil.which("bart") is None:
        raise AcquisitionError("recon engine 'bart' needs the bart command (Debian: apt install bart)")
    shape = np.array(coil_maps.shape[1:])
    pad = shape % 2
    padded = shape + pad
    maps = np.pad(coil_maps, ((0, 0), (pad[0], 0), (pad[1], 0)))
    regularization = ["-l2", "-r", "0"] if lam == 0 else ["-m", "-R", f"L:3:3:{lam}", "-b", str(block)]
    with tempfile.TemporaryDirectory() as tmp:
        # BART: trajectory in units of 1/FOV (3, readout, spokes, 1, 1, frames), k-space (1, readout, spokes,
        # coils, 1, frames), basis (1, 1, 1, 1, 1, frames, r), sensitivities (X, Y, 1, coils)
        traj = np.zeros((3, *trajectory.shape[2:0:-1], 1, 1, trajectory.shape[0]))
        traj[:2] = np.transpose(trajectory * padded / (2 * np.pi), (3, 2, 1, 0))[:, :, :, None, None, :]
        write_cfl(f"{tmp}/traj", traj)
        write_cfl(f"{tmp}/ksp", np.transpose(kspace, (3, 2, 0, 1))[None, :, :, :, None, :])
        write_cfl(f"{tmp}/basis", U[None, None, None, None, None])
        write_cfl(f"{tmp}/sens", np.transpose(maps, (1, 2, 0))[:, :, None, :])
        run = subprocess.run(["bart", "pics", "-S", "-i", str(iterations), *regularization, "-B", f"{tmp}/basis",
                              "-t", f"{tmp}/traj", f"{tmp}/ksp", f"{tmp}/sens", f"{tmp}/out"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise AcquisitionError(f"bart pics failed: {run.stderr.strip()[-300:]}")
        out = read_cfl(f"{tmp}/out").reshape(*padded, U.shape[1])[pad[0]:, pad[1]:]
    # BART's NUFFT is unitary on the padded grid: 1/sqrt(X' Y') where ours has 1/sqrt(X Y)
    return (out * np.sqrt(np.prod(shape) / np.prod(padded))).astype(np.complex64)


def reconstruct_kspace(kspace: KSpace, basis: Basis, coil_maps: str | np.ndarray = "estimated",
                       calibration_radius: float = 0.4,
                       engine: str = "torch", lam: float = 0.0, iterations: int = 10, cg_iterations: int = 5,
                       block: int = 8, seed: int = 0, device: torch.device | str = "cpu",
                       show_progress: bool = False, checkpoints: Sequence[int] = (),
                       on_checkpoint: Callable[[int, np.ndarray], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient images (X, Y, 1, r) complex64 of a slice's k-space in ``basis`` and the sensitivities (coils, X,
    Y) used: the file's true ones (``coil_maps`` "given"), ``estimate_coil_maps`` ("estimated") or the array given
    (e.g. those estimated from the full data, to reconstruct its noise-only part). ``engine`` "torch":
    ``reconstruct``; "bart": ``reconstruct_bart`` with iterations * cg_iterations iterations. ``checkpoints`` and
    ``on_checkpoint``: ``reconstruct``'s (torch CG only)."""
    if kspace.sequence_sha256 != basis.sequence_sha256:
        raise AcquisitionError("the k-space samples another sequence than the basis was computed for")
    if engine not in ("torch", "bart"):
        raise AcquisitionError(f"engine must be torch or bart; got {engine}")
    if checkpoints and engine != "torch":
        raise AcquisitionError("checkpoints follow the torch engine's CG, not BART's")
    maps = sensitivities(kspace, coil_maps, calibration_radius)
    if engine == "bart":
        out = reconstruct_bart(kspace.data, kspace.trajectory, basis.U, maps, lam, iterations * cg_iterations, block)
    else:
        out = reconstruct(kspace.data, kspace.trajectory, basis.U, maps, lam, iterations, cg_iterations, block, seed,
                          device, show_progress, checkpoints, on_checkpoint)
    return out[:, :, None, :], maps


def error_budget(kspace: KSpace, basis: Basis, noise: np.ndarray, reference: np.ndarray, labels: np.ndarray,
                 tissues: Mapping[int, str], snr: float, options: Mapping, curve: Mapping,
                 coil_maps: str = "estimated") -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """A phantom's reconstruction and where its error comes from.

    Reconstructs (``reconstruct_kspace`` with ``options``, sensitivities ``coil_maps``) the k-space, its noiseless
    part and its noise ``noise`` alone with the same sensitivities, and scores each (sources recon,
    recon_noiseless, recon_noise_only) by ``crbnet.tables.coefficient_errors`` against the noiseless projection
    ``reference`` (X, Y, 1, r), after removing the phase that estimated sensitivities carry. Returns the
    reconstruction (X, Y, 1, r), its error table and the error curve: the same scores of the whole mask with
    columns method (cg | llr), lambda, steps and seconds (since that reconstruction started), for each source after each of
    ``curve["steps"]`` CG steps (followed during the reconstruction itself when it is plain torch CG, else by CG
    runs of their own) and for the k-space with locally low rank at each of ``curve["lambdas"]``
    (``curve["admm"]`` ADMM steps of ``options``' cg_iterations)."""
    maps = sensitivities(kspace, coil_maps, options.get("calibration_radius", 0.4))
    phase = np.exp(1j * object_phase(maps, kspace.coil_maps))[..., None, None]

    def score(source: str, images: np.ndarray) -> pd.DataFrame:
        error = images * phase - (0 if source == "recon_noise_only" else reference)
        return coefficient_errors({source: error}, reference, labels, tissues, snr)

    steps, rows = list(curve["steps"]), []
    plain = options["engine"] == "torch" and options["lam"] == 0

    def follow(source: str) -> dict:
        started = time.perf_counter()

        def record(k: int, images: np.ndarray) -> None:
            rows.append(score(source, images[:, :, None]).query("region == 'all'").assign(
                method="cg", **{"lambda": 0.0}, steps=k, seconds=time.perf_counter() - started))
        return {"checkpoints": steps, "on_checkpoint": record}

    parts = {"recon": kspace.data, "recon_noiseless": kspace.data - noise, "recon_noise_only": noise}
    images = {source: reconstruct_kspace(replace(kspace, data=data), basis, maps, **options,
                                         **(follow(source) if plain and steps else {}))[0]
              for source, data in parts.items()}
    if steps and not plain:
        cg = options | {"engine": "torch", "lam": 0.0, "iterations": max(steps), "cg_iterations": 1}
        for source, data in parts.items():
            reconstruct_kspace(replace(kspace, data=data), basis, maps, **cg, **follow(source))
    for lam in curve["lambdas"]:
        started = time.perf_counter()
        llr = reconstruct_kspace(kspace, basis, maps, **(options | {"engine": "torch", "lam": lam,
                                                                    "iterations": curve["admm"]}))[0]
        rows.append(score("recon", llr).query("region == 'all'").assign(
            method="llr", **{"lambda": lam}, steps=curve["admm"] * options["cg_iterations"],
            seconds=time.perf_counter() - started))
    errors = pd.concat([score(source, image) for source, image in images.items()], ignore_index=True)
    columns = ["method", "lambda", "steps", "source", "coefficient", "relative_error", "rms_times_snr", "seconds"]
    return images["recon"], errors, pd.concat(rows, ignore_index=True)[columns]


def sensitivities(kspace: KSpace, coil_maps: str | np.ndarray, calibration_radius: float) -> np.ndarray:
    """Coil sensitivities (coils, X, Y) for a slice's k-space: its file's true ones ("given"), estimated from its
    centre (``estimate_coil_maps``, "estimated") or the array given, checked against the k-space's shape."""
    if isinstance(coil_maps, np.ndarray):
        if coil_maps.shape != kspace.coil_maps.shape:
            raise AcquisitionError(f"coil maps of shape {coil_maps.shape} for k-space of {kspace.coil_maps.shape}")
        return coil_maps
    if coil_maps not in ("given", "estimated"):
        raise AcquisitionError(f"coil_maps must be given, estimated or an array; got {coil_maps}")
    if coil_maps == "given":
        return kspace.coil_maps
    return estimate_coil_maps(kspace.data, kspace.trajectory, kspace.coil_maps.shape[1:], calibration_radius)


def recon_options(recon: Mapping) -> dict:
    """``reconstruct_kspace`` keyword arguments of a config's ``recon`` settings (the schema's ``$defs/recon``)."""
    return {"engine": recon["engine"], "lam": recon["lambda"], "iterations": recon["iterations"],
            "cg_iterations": recon["cg_iterations"], "block": recon["block"], "seed": recon["seed"]}


def object_phase(estimated: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Phase (X, Y) that estimated sensitivities (coils, X, Y) carry over the given ones: angle of sum_c est
    conj(given). Coefficients reconstructed with the estimated maps times exp(i phase) are those of the given maps."""
    return np.angle((estimated * given.conj()).sum(axis=0))
