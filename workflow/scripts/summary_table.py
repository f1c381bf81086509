"""Adapter: headline table per estimator and parameter (logic in crbnet.tables.headline_table)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import headline_table  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    read = lambda names, files: dict(zip(names, (pd.read_csv(f) for f in files)))  # noqa: E731
    histories = read(sm.params.losses, sm.input.histories)
    tests = read(sm.params.estimators, sm.input.tests)
    grids = read(sm.params.estimators, sm.input.grids) if len(sm.input.grids) else None
    write_csv(headline_table(histories, tests, grids), sm.output.table)
