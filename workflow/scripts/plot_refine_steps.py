"""Adapter: the refined estimator's steps curve, from its small table (logic in crbnet.plotting)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.plotting import plot_refine_steps, save  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    save(plot_refine_steps(pd.read_csv(sm.input.table)), [sm.output.png, sm.output.pdf])
