"""Adapter: write the parameter space a design over prior draws samples (checked by crbnet.parameters)."""
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.atomic import atomic_path  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    space = json.loads(sm.params.space)
    ParameterSpace.from_config(space)  # refuse a prior that cannot be drawn from before writing it
    with atomic_path(sm.output.prior) as tmp:
        Path(tmp).write_text(yaml.safe_dump(space, sort_keys=False))
