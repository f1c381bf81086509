"""Estimators: the protocol that the network, dictionary-matching (crbnet.matching) and NLLS (crbnet.fitting)
estimators share, and the trained network with everything needed to apply it (basis, input normalization, metadata).

One file per trained network (``torch.save`` of tensors and plain containers, loadable with ``weights_only=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import h5py
import numpy as np
import torch

from crbnet.basis import Basis, normalize
from crbnet.io.atomic import atomic_path
from crbnet.matching import MatchingEstimator
from crbnet.nets import ResidualMLP
from crbnet.devices import DeviceError, batch_entries, check_options

FORMAT = "crbnet-estimator/1"


class ModelError(ValueError):
    """An unreadable model file or data the model cannot be applied to."""


@runtime_checkable
class Estimator(Protocol):
    """What every estimator offers: the estimated parameters' ``names`` and SI ``units``, the ``basis`` its
    coefficients live in, and ``predict``: estimates (n, Pe) float64 from complex coefficients or fingerprints (n, ...)
    of the basis's sequence. Every estimator takes the same keyword options, checks them
    (``crbnet.devices.check_options``) and applies those that change what it computes: ``batch`` (voxels at a time),
    ``precision`` (fp32, bf16, auto) and ``device`` (where a network runs); any other option is a TypeError naming
    it. Rows it cannot estimate come back NaN or outside their range (``crbnet.parameters.in_range``), never
    clipped."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    basis: Basis

    def predict(self, data: np.ndarray, *, batch: int | None = None, precision: str = "fp32",
                device: torch.device | str = "cpu") -> np.ndarray: ...


@dataclass
class NetworkEstimator:
    """Network + basis + normalization. ``architecture`` holds the ResidualMLP keyword arguments
    (n_in, hidden, norm, skips); ``metadata`` the parameterization and the training configuration."""

    net: ResidualMLP
    basis: Basis
    normalization: str
    names: tuple[str, ...]
    units: tuple[str, ...]
    architecture: dict
    metadata: dict = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return self.basis.rank

    def save(self, path: str | Path) -> None:
        payload = {
            "format": FORMAT, "state_dict": self.net.state_dict(), "architecture": self.architecture,
            "names": list(self.names), "units": list(self.units), "normalization": self.normalization,
            "basis": {"U": torch.as_tensor(self.basis.U), "spectrum": torch.as_tensor(self.basis.spectrum),
                      "sequence_sha256": self.basis.sequence_sha256, "basis_sha256": self.basis.sha256},
            "metadata": self.metadata,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path) -> NetworkEstimator:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"model file {path} does not exist") from None
        except Exception as err:
            raise ModelError(f"{path} is not a crbnet model file ({type(err).__name__})") from None
        if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
            raise ModelError(f"{path} is not a crbnet model file (format {FORMAT} expected)")
        state = payload["state_dict"]
        net = ResidualMLP(shift=state["shift"], scale=state["scale"], **payload["architecture"])
        net.load_state_dict(state)
        b = payload["basis"]
        basis = Basis(b["U"].numpy(), b["spectrum"].numpy(), b["sequence_sha256"])
        return cls(net.eval(), basis, payload["normalization"], tuple(payload["names"]), tuple(payload["units"]),
                   dict(payload["architecture"]), dict(payload["metadata"]))

    def coefficients(self, data: np.ndarray) -> np.ndarray:
        """Complex coefficients (n, r) from coefficients (n, r) or fingerprints (n, Ns) of the model's sequence."""
        if not np.iscomplexobj(data):
            raise ModelError(f"expected complex coefficients or fingerprints, got {data.dtype} data")
        return self.basis.as_coefficients(data)

    def predict(self, data: np.ndarray | torch.Tensor, *, batch: int | None = None, precision: str = "fp32",
                device: torch.device | str = "cpu") -> np.ndarray:
        """Estimates (n, Pe) float64 in physical units from complex coefficients or fingerprints (n, ...).

        Inference folds BatchNorm into the linear layers and runs in batches small enough for the activations to
        stay in cache (4096 voxels on a CPU; on a GPU as many as a quarter of its free memory takes, unless
        ``batch`` is given); ``precision='bf16'`` runs the wide layers in bfloat16 (ResidualMLP.folded) where the
        hardware has bf16 (fp32 with a warning elsewhere), ``auto`` picks bf16 where native
        (devices.resolve_precision)."""
        if isinstance(data, torch.Tensor):
            data = data.cpu().numpy()
        c = self.coefficients(np.asarray(data))
        try:
            device, run = check_options(precision, device)
        except DeviceError as err:
            raise ModelError(str(err)) from None
        net = self.net.folded(bf16=run == "bf16").to(device=device)
        batch = batch or batch_entries(device, 16 * sum(m.out_features for m in net.modules()
                                                        if isinstance(m, torch.nn.Linear)), 4096)
        out = np.empty((c.shape[0], len(self.names)), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, c.shape[0], batch):
                chunk = torch.as_tensor(c[start: start + batch], device=device).to(torch.complex64)
                x = normalize(chunk, self.normalization)
                out[start: start + batch] = net(x).double().cpu().numpy()
        return out


def load_estimator(path: str | Path) -> Estimator:
    """A trained network or a dictionary-matching estimator, told apart by the file's content (HDF5: dictionary
    matching; otherwise a torch file), not its name."""
    if not Path(path).is_file():
        raise ModelError(f"model file {path} does not exist")
    if h5py.is_hdf5(path):
        try:
            return MatchingEstimator.load(path)
        except ValueError as err:
            raise ModelError(str(err)) from None
    return NetworkEstimator.load(path)
