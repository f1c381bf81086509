"""Adapter: Monte-Carlo bias/variance table of one split at one or more SNRs (rules evaluate and snr_sweep;
logic in crbnet.evaluation)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.estimator import load_estimator  # noqa: E402
from crbnet.evaluation import evaluate_file  # noqa: E402
from crbnet.fitting import refined_from_config  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    estimator = load_estimator(sm.input.model)
    space = ParameterSpace.from_config(json.loads(sm.params.space))
    if sm.params.refined:
        estimator = refined_from_config(estimator, sm.input.sequence, space, sm.params.refined,
                                        pick_device(sm.params.device, sm.resources.get("gpu", 0)))
    table = evaluate_file(estimator, sm.input.dataset, sm.params.snrs, sm.params.realizations, sm.params.seed,
                          sm.params.fingerprints, ranges=space.ranges)
    write_csv(table, sm.output.table)
