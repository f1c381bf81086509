"""Adapter: a scan's ISMRMRD raw data as k-space (logic in crbnet.io.mrd)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.kspace import save_kspace  # noqa: E402
from crbnet.io.mrd import import_mrd  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    scan, sequence = json.loads(sm.params.scan), load_sequence(sm.input.sequence)
    kspace = import_mrd(sm.input.raw, sequence.n_samples, sequence.sha256, scan.get("virtual_coils"),
                        scan["calibration_radius"])
    print(f"{sm.input.raw}: {kspace.data.shape} (coils, frames, spokes, readout), image {kspace.coil_maps.shape[1:]}")
    save_kspace(sm.output.kspace, kspace)
