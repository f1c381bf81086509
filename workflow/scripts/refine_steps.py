"""Adapter: the refined estimator's steps curve and full NLLS on the same draws (logic in
crbnet.evaluation.refinement_curve)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.datasets import load_examples  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.estimator import load_estimator  # noqa: E402
from crbnet.evaluation import refinement_curve  # noqa: E402
from crbnet.fitting import spread_candidates  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    refined = json.loads(sm.params.refined)
    curve = refined["curve"]
    start = load_estimator(sm.input.model)
    space = ParameterSpace.from_config(json.loads(sm.params.space))
    signal_model = signal_model_for(load_sequence(sm.input.sequence), space.parameterization,
                                    pick_device(sm.params.device, sm.resources.get("gpu", 0)))
    examples = {split: load_examples(sm.input[split], start.basis, start.names).subset(slice(0, curve["fingerprints"]))
                for split in sm.params.splits}
    table = refinement_curve(start, signal_model, space, examples, curve["steps"],
                             spread_candidates(space, refined["candidates"]), curve["nlls_iterations"], sm.params.snr,
                             curve["realizations"], sm.params.seed)
    write_csv(table, sm.output.table)
