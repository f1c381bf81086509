"""Adapter: the designed pattern against its start and the compared sequences (logic in crbnet.plotting)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.plotting import plot_design, save  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    table = pd.read_csv(sm.input.table)
    paths = {"start": sm.params.start, "designed": sm.input.sequence} | {Path(c).stem: c for c in sm.params.compare}
    save(plot_design(table, {name: load_sequence(path) for name, path in paths.items()}, sm.params.draws),
         [sm.output.png, sm.output.pdf])
