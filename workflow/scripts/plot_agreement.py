"""Adapter: the NN-against-NLLS figure of a phantom from its small voxel-pair table."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet import plotting  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    plotting.save(plotting.plot_agreement(pd.read_csv(sm.input.pairs)), [sm.output.png, sm.output.pdf])
