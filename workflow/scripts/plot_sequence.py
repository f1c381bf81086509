"""Adapter: figure of the sequence (logic in crbnet.plotting)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.plotting import plot_sequence, save  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    save(plot_sequence(load_sequence(sm.input.sequence)), [sm.output.png, sm.output.pdf])
