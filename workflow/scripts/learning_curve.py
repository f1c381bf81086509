"""Adapter: learning-curve table and figure (logic in crbnet.tables.learning_curve_table and crbnet.plotting)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet import plotting  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import learning_curve_table  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    runs = []
    for run, path in sm.input.items():  # run: fingerprints/steps/estimator/split/experiment
        n, steps, estimator, split, _ = run.split("/")
        runs.append((int(n), int(steps), estimator, split, pd.read_csv(path)))
    table = learning_curve_table(runs)
    write_csv(table, sm.output.table)
    plotting.save(plotting.plot_learning_curve(table, sm.params.x), [sm.output.png, sm.output.pdf])
