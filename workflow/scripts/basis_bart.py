"""Adapter: export the SVD basis for BART (logic in crbnet.io.cfl.write_cfl)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import Basis  # noqa: E402
from crbnet.io.cfl import write_cfl  # noqa: E402

sm = snakemake  # noqa: F821
U = Basis.load(sm.input.basis).U
write_cfl(sm.output.cfl.removesuffix(".cfl"), U.reshape(1, 1, 1, 1, 1, *U.shape))  # TE_DIM = 5, COEFF_DIM = 6
Path(sm.log[0]).write_text(f"basis {U.shape[0]} x {U.shape[1]} -> {sm.output.cfl}\n")
