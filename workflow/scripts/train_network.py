"""Adapter: train one network (logic in crbnet.training)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.training import TrainConfig, train_from_files  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    cfg = TrainConfig.from_mapping(json.loads(sm.params.config))
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))
    print(f"training the {cfg.loss} network on {device}")
    estimator = train_from_files(sm.input.train, sm.input.val, sm.input.basis, cfg, device, sm.output.history,
                                 Path(sm.output.model).with_suffix(".ckpt"), sm.input.get("warm"))
    estimator.save(sm.output.model)
