"""Adapter: the BIDS derivatives tree's dataset_description.json, README.md and .bidsignore (logic in crbnet.io.bids)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.atomic import atomic_path  # noqa: E402
from crbnet.io.bids import bidsignore, dataset_description, readme  # noqa: E402

sm = snakemake  # noqa: F821
name = f"crbnet maps, experiment {sm.wildcards.experiment}"
description = dataset_description(name, sm.params.version, sm.params.commit)
with atomic_path(sm.output.description) as tmp:
    tmp.write_text(json.dumps(description, indent=2) + "\n")
with atomic_path(sm.output.ignore) as tmp:
    tmp.write_text(bidsignore(sm.params.suffixes))
with atomic_path(sm.output.readme) as tmp:
    tmp.write_text(readme(name, sm.params.suffixes))
Path(sm.log[0]).write_text(f"wrote {sm.output.description}, {sm.output.ignore} and {sm.output.readme}\n")
