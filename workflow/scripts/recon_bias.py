"""Adapter: per-tissue bias of every estimator with Gaussian-noise and with reconstructed coefficients, table and
figure (logic in crbnet.tables and crbnet.plotting)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet import plotting  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.io.maps import read_maps  # noqa: E402
from crbnet.phantoms import load_phantom  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import recon_bias_table  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    phantom, _, _ = load_phantom(sm.input.phantom)
    maps = {kind: {name.removeprefix(f"{kind}_"): read_maps(path)[0] for name, path in sm.input.items()
                   if name.startswith(f"{kind}_")} for kind in ("gaussian", "recon")}
    table = recon_bias_table(phantom.labels, phantom.tissues, phantom.maps, maps["gaussian"], maps["recon"])
    print(table[["estimator", "tissue", "parameter", "rel_bias_pct_gaussian", "rel_bias_pct_recon"]].to_string(index=False))
    write_csv(table, sm.output.table)
    plotting.save(plotting.plot_recon_bias(table), [sm.output.png, sm.output.pdf])
