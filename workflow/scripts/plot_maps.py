"""Adapter for the map figures of a phantom: read the truth and every estimator's maps, call crbnet.plotting."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet import plotting  # noqa: E402
from crbnet.phantoms import load_phantom  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import phantom_maps, roi_table  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    phantom, _, _ = load_phantom(sm.input.phantom)
    maps = phantom_maps(phantom, {name: path for name, path in sm.input.items() if name != "phantom"})
    if sm.rule == "fig_maps":
        display = json.loads(sm.params.display)
        figure = plotting.plot_maps(maps, phantom.labels, phantom.tissues, window_tissues=display["tissues"],
                                    windows=display["windows"], difference_windows=display["difference_windows"])
    else:
        figure = plotting.plot_roi_boxplots(roi_table(phantom.labels, phantom.tissues, maps, erode=True))
    plotting.save(figure, [sm.output.png, sm.output.pdf])
