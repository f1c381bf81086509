"""Adapter: every source's maps of a phantom against NLLS in the voxels NLLS fitted (logic in crbnet.maps)."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.phantoms import load_phantom  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import agreement, paired_table, phantom_maps, roi_table  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    phantom, _, _ = load_phantom(sm.input.phantom)
    maps = phantom_maps(phantom, {name: path for name, path in sm.input.items() if name != "phantom"})
    fitted = np.any([np.isfinite(m) for m in maps["nlls"].values()], axis=0)  # the sample NLLS fitted: tables stay small
    pairs = paired_table(roi_table(np.where(fitted, phantom.labels, 0), phantom.tissues, maps), "nlls")
    table = pd.concat([agreement(pairs).assign(tissue="all"), agreement(pairs, ("estimator", "tissue", "parameter"))])
    print(table[table.tissue == "all"].to_string(index=False))
    write_csv(pairs, sm.output.pairs)
    write_csv(table[["estimator", "tissue", "parameter", "median_rel_diff_pct", "median_abs_rel_diff_pct", "voxels",
                     "n_out_of_range"]],
              sm.output.table)
