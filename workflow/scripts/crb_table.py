"""Adapter: per-parameter CRB summary of one split (logic in crbnet.simulation)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.simulation import crb_summary  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    write_csv(crb_summary(sm.input.dataset), sm.output.table)
