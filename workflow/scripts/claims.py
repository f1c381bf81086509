"""Adapter: the papers' claims on the configured experiments, table and figure (logic in crbnet.claims and
crbnet.plotting)."""
import json
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet import plotting  # noqa: E402
from crbnet.claims import Evidence, claims_table  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    grid_parameters = json.loads(sm.params.grid_parameters)
    tables = defaultdict(lambda: {"test": {}, "grid": {}})
    for run, path in sm.input.items():  # run: experiment/estimator/test|grid
        experiment, estimator, role = run.split("/")
        tables[experiment][role][estimator] = pd.read_csv(path)
    evidence = {name: Evidence(t["test"], t["grid"], tuple(grid_parameters[name])) for name, t in tables.items()}
    table = claims_table(evidence)
    print(table[["claim", "experiment", "estimator", "parameter", "measured", "lo", "hi", "verdict"]].to_string(
        index=False))
    write_csv(table, sm.output.table)
    plotting.save(plotting.plot_claims(table), [sm.output.png, sm.output.pdf])
