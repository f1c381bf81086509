"""Adapter: one CRB-optimal sequence design through the `crbnet design` command (logic in crbnet.design)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.cli import main  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    arguments = ["design", *json.loads(sm.params.arguments), "--out", sm.output.sequence]
    print("crbnet", " ".join(arguments))
    if main(arguments) != 0:
        raise SystemExit(f"crbnet design failed (see {sm.log[0]})")
