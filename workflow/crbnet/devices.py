"""Where and in what precision the numerics run: CUDA only when usable and reserved, bf16 only where native, and
how much work to hand a device at once."""

from __future__ import annotations

import functools
import warnings

import torch

from crbnet.runtime import cpu_flags


class DeviceError(ValueError):
    """A device or precision that is not one of the known values, or that this machine cannot provide."""


@functools.cache
def cuda_usable() -> bool:
    """CUDA is present and a tiny probe kernel runs on it (a card this torch build does not support fails here,
    not at the first real kernel)."""
    if not torch.cuda.is_available():
        return False
    try:
        return float((torch.arange(4.0, device="cuda") * 2).sum()) == 12.0
    except Exception:  # noqa: BLE001 - any failure of the probe means: not usable
        return False


def pick_device(request: str = "auto", gpus: int = 0) -> torch.device:
    """The device to compute on. ``auto``: CUDA only when the job reserved GPUs (``gpus > 0``, a rule's
    ``resources: gpu``) and CUDA is usable, else CPU, so that jobs without a GPU reservation never share one.
    ``cuda``: CUDA or DeviceError. ``cpu``: CPU."""
    if request not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"device must be auto, cpu or cuda, got '{request}'")
    if request == "cuda" and not cuda_usable():
        raise DeviceError("device 'cuda' requested but no usable CUDA GPU is present")
    if request == "cuda" or (request == "auto" and gpus > 0 and cuda_usable()):
        return torch.device("cuda")
    return torch.device("cpu")


def batch_entries(device: torch.device, bytes_per_entry: float, cpu_entries: int, share: float = 0.25) -> int:
    """How many entries (fingerprints x (1 + tangents), voxels, ...) to process at once: ``cpu_entries`` on a CPU
    (sized for its caches); on a GPU as many as fit in ``share`` of its free memory at ``bytes_per_entry`` (the
    measured or estimated peak per entry), so several jobs can share a card without running out of memory."""
    if device.type != "cuda":
        return cpu_entries
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, int(share * free / bytes_per_entry))


def bf16_native(device: torch.device) -> bool:
    """Whether bfloat16 arithmetic runs in hardware: CUDA compute capability >= 8.0, or a CPU with AVX512-BF16 or
    AMX-BF16. Elsewhere (AVX2-only CPUs, most laptops) bf16 is emulated, several to ~100x slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(request: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``auto`` -> the precision to run: ``auto`` is bf16 where native, else fp32; an
    explicit bf16 where it is emulated falls back to fp32 with a one-line warning."""
    if request not in ("auto", "fp32", "bf16"):
        raise DeviceError(f"precision must be auto, fp32 or bf16, got '{request}'")
    if request == "fp32":
        return "fp32"
    if bf16_native(device):
        return "bf16"
    if request == "bf16":
        warnings.warn(f"bf16 is emulated on this {device.type} (no AVX512-BF16/AMX or compute capability < 8.0): "
                      f"running fp32 instead", stacklevel=2)
    return "fp32"


def check_options(precision: str, device: torch.device | str) -> tuple[torch.device, str]:
    """(device, precision to run) of an estimator's ``predict`` options, after checking both (DeviceError naming a
    bad value; resolve_precision): every estimator takes the same options and checks them, whether or not they change
    what it computes."""
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise DeviceError(f"device: {err}") from None
    return device, resolve_precision(precision, device)
