"""Adapter: where the estimators fail, per Monte-Carlo table, SNR and parameter (logic in crbnet.tables)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import failure_table  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    tables = {tuple(name.split("/")): pd.read_csv(path) for name, path in zip(sm.params.names, sm.input.tables)}
    write_csv(failure_table(tables), sm.output.table)
