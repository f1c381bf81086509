"""Adapter: every estimator with each sequence, table and figure (logic in crbnet.tables.sequence_comparison_table
and crbnet.plotting)."""
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet import plotting  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import sequence_comparison_table  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    sequences = json.loads(sm.params.sequences)
    runs = []
    for run, path in sm.input.items():  # run: experiment/estimator
        experiment, estimator = run.split("/")
        runs.append((experiment, Path(sequences[experiment]).stem, estimator, pd.read_csv(path)))
    table = sequence_comparison_table(runs)
    write_csv(table, sm.output.table)
    plotting.save(plotting.plot_sequence_comparison(table), [sm.output.png, sm.output.pdf])
