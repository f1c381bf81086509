"""Adapter: sqrt(CRB) maps over the 2-D slice, from the slice table (logic in crbnet.plotting)."""
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.plotting import plot_crb_slice, save  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    cfg = json.loads(sm.params.slice)
    fig = plot_crb_slice(pd.read_csv(sm.input.table), cfg["x"]["name"], cfg["y"]["name"], cfg["estimate"],
                         cfg["sigma"])
    save(fig, [sm.output.png, sm.output.pdf])
