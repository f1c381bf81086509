"""Adapter: SVD basis of the training fingerprints (logic in crbnet.basis)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import dataset_basis  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    basis = dataset_basis(sm.input.dataset, sm.params.rank)
    print(f"rank {basis.rank}: energy captured {basis.energy:.8f}")
    write_csv(basis.spectrum_table(), sm.output.spectrum)
    basis.save(sm.output.basis)
