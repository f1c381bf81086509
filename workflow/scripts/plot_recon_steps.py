"""Adapter: the reconstruction's error curve, from its small table (logic in crbnet.plotting)."""
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.plotting import plot_recon_steps, save  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    table = pd.read_csv(sm.input.table, dtype={"coefficient": str})
    save(plot_recon_steps(table, json.loads(sm.params.acquisition)["recon"]), [sm.output.png, sm.output.pdf])
