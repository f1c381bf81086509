"""Adapter: every estimate over a parameter sweep (logic in crbnet.evaluation.estimates_file)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.estimator import load_estimator  # noqa: E402
from crbnet.evaluation import estimates_file  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    table = estimates_file(load_estimator(sm.input.model), sm.input.dataset, sm.params.snr, sm.params.realizations,
                           sm.params.seed)
    write_csv(table, sm.output.table)
