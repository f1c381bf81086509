# Helpers shared by the rules: config validation, paths and per-experiment settings. No rules here.
import json

from snakemake.utils import validate

validate(config, "../workflow/schemas/config.schema.yaml")

RESULTS = config.get("results", "results")
EXPERIMENTS = config["experiments"]


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    split="[A-Za-z0-9_-]+",


def experiment(wildcards):
    """The config block of the experiment named by the wildcard."""
    return EXPERIMENTS[wildcards.experiment]


def sequence_file(wildcards):
    return experiment(wildcards)["sequence"]


def as_json(value):
    """Config sub-trees travel to scripts as JSON strings, so that a changed value reruns the rule."""
    return json.dumps(value, sort_keys=True)


def all_outputs():
    out = []
    for name, exp in EXPERIMENTS.items():
        out += expand(f"{RESULTS}/{name}/data/{{split}}.h5", split=exp["datasets"])
        out += expand(f"{RESULTS}/{name}/tables/crb_summary_{{split}}.csv", split=exp["datasets"])
        out.append(f"{RESULTS}/{name}/figures/sequence.png")
        if "crb_slice" in exp:
            out.append(f"{RESULTS}/{name}/figures/crb_slice.png")
    return out
