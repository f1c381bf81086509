# Helpers shared by the rules: the resolved configuration (crbnet.experiment.Plan) and input functions. No rules here.
import json
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

import crbnet  # noqa: E402
from crbnet.experiment import (  # noqa: E402
    ESTIMATORS, FIGURES, IMAGE_FIGURES, NETWORK_LOSSES, RECON_SUFFIX, SOURCES, Plan)
from crbnet.io import bids  # noqa: E402
from crbnet.provenance import git_commit, source_digest  # noqa: E402


def selected_experiments():
    """The experiments the config files given with --configfile define (none: all): `--configfile my.yaml` runs
    my.yaml's experiments, not the default one as well."""
    names = set()
    for path in workflow.overwrite_configfiles or []:
        with open(path) as f:
            names |= set((yaml.safe_load(f) or {}).get("experiments", {}))
    return names


PLAN = Plan.from_config(config, selected_experiments())
RESULTS = PLAN.results
EXPERIMENTS = PLAN.experiments
GIT_COMMIT = git_commit(workflow.basedir)  # recorded in the BIDS trees' dataset_description.json
# resources.gpu of the rules that can use a GPU (training, reconstruction): none under `device: cpu`, the one switch
# for a machine or cluster without GPUs (sbatch refuses --gpus where no GPU is configured)
GPU = 0 if PLAN.device == "cpu" else 1


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    split="[A-Za-z0-9_-]+",
    loss="|".join(NETWORK_LOSSES),
    estimator="|".join(ESTIMATORS),
    image="[A-Za-z0-9_-]+",
    subject="[A-Za-z0-9]+",
    desc="[A-Za-z0-9]+",
    suffix="[A-Za-z0-9]+",
    curve="[A-Za-z0-9_-]+",
    comparison="[A-Za-z0-9_-]+",
    design="[A-Za-z0-9_-]+",


def experiment(wildcards):
    """The experiment named by the wildcard (a crbnet.experiment.Experiment)."""
    return EXPERIMENTS[wildcards.experiment]


def sequence_file(wildcards):
    return experiment(wildcards)["sequence"]


def code_digest(script):
    """Digest of the crbnet modules that a script imports, a param of the expensive rules. A change to the package
    code thus reruns them and keys Snakemake's between-workflow cache (--cache)."""
    return source_digest(Path(workflow.basedir) / "workflow" / "scripts" / script)


def as_json(value):
    """Config sub-trees travel to scripts as JSON strings, so that a changed value reruns the rule."""
    return json.dumps(value, sort_keys=True)


def setting(*keys):
    """Params function: the experiment's config value at ``keys`` (defaults filled from the schema)."""

    def value(wildcards):
        out = experiment(wildcards).config
        for key in keys:
            out = out[key]
        return out

    return value


def json_setting(*keys):
    return lambda wildcards: as_json(setting(*keys)(wildcards))


def data_file(wildcards, split):
    return PLAN.data_file(wildcards.experiment, split)


def split_file(*keys):
    """Input function: the dataset file of the split named at ``keys`` of the experiment's config."""
    return lambda wildcards: data_file(wildcards, setting(*keys)(wildcards))


def basis_file(wildcards):
    return PLAN.basis_file(wildcards.experiment)


def basis_input(wildcards):
    return data_file(wildcards, experiment(wildcards).basis["split"])


def simulate_inputs(wildcards):
    """The sequence and, for every split but the basis split, the basis (coefficients and their CRBs)."""
    basis = experiment(wildcards).basis
    inputs = {"sequence": sequence_file(wildcards)}
    if basis is not None and wildcards.split != basis["split"]:
        inputs["basis"] = basis_file(wildcards)
    return inputs


def training_inputs(wildcards):
    """Train and validation splits, the basis and, for a warm start, the network it starts from."""
    exp = experiment(wildcards)
    training = exp["training"]
    inputs = {"train": data_file(wildcards, training["train_split"]), "val": data_file(wildcards, training["val_split"]),
              "basis": basis_file(wildcards)}
    warm = exp.warm_start(wildcards.loss)
    if warm:
        inputs["warm"] = PLAN.path(wildcards.experiment, f"models/{warm}.pt")
    return inputs


def training_config(wildcards):
    return as_json(experiment(wildcards).training_config(wildcards.loss))


def refined_settings(wildcards):
    """The refined estimator's settings for its own jobs, {} for the others (so that they only rerun it)."""
    return experiment(wildcards)["refined"] if wildcards.estimator == "refined" else {}


def refine_curve_inputs(wildcards):
    """The refined estimator's start, the sequence and the dataset of every split of its steps curve."""
    exp = experiment(wildcards)
    return {"model": PLAN.path(exp.name, exp.model_file("refined")), "sequence": sequence_file(wildcards),
            **{split: data_file(wildcards, split) for split in exp.refine_curve_splits}}


def model_file(wildcards):
    """The estimator's file; for NLLS from the prior means, the basis."""
    relative = experiment(wildcards).model_file(wildcards.estimator)
    return basis_file(wildcards) if relative is None else PLAN.path(wildcards.experiment, relative)


def image_config(wildcards):
    """The config of the phantom or scan named by the wildcard."""
    return experiment(wildcards).images[wildcards.image]


def image_file(wildcards):
    """The file of a phantom image: phantoms/NAME.h5, or recon/PHANTOM.h5 for PHANTOM_recon."""
    return PLAN.path(wildcards.experiment, experiment(wildcards).image_file(wildcards.image))


def image_inputs(wildcards):
    """A phantom image's file, or a scan's coefficient image (the user's, or reconstructed from its raw data) and
    optional mask."""
    exp = experiment(wildcards)
    if wildcards.image in exp.phantom_images:
        return {"data": image_file(wildcards)}
    scan = exp.scans[wildcards.image]
    data = scan["coefficients"] if "coefficients" in scan else PLAN.path(exp.name, f"raw/{wildcards.image}/coefficients.h5")
    return {"data": data} | ({"mask": scan["mask"]} if "mask" in scan else {})


def bids_entry(wildcards):
    """{image, source, parameter, kind} of the map at a BIDS path (Experiment.bids_maps)."""
    path = f"sub-{wildcards.subject}/anat/sub-{wildcards.subject}_desc-{wildcards.desc}_{wildcards.suffix}.nii.gz"
    entry = experiment(wildcards).bids_maps[path]
    return dict(zip(("image", "source", "parameter", "kind"), entry))


def bids_source(wildcards):
    """The file a BIDS map comes from: the phantom image (truth) or the estimator's maps."""
    entry = bids_entry(wildcards)
    if entry["source"] == "truth":
        return PLAN.path(wildcards.experiment, experiment(wildcards).image_file(entry["image"]))
    return PLAN.path(wildcards.experiment, f"maps/{entry['image']}/estimates_{entry['source']}.h5")


def estimator_maps(exp, image):
    """{estimator: maps file} of every estimator's maps of an image."""
    return {name: PLAN.path(exp.name, f"maps/{image}/estimates_{name}.h5") for name in exp.map_estimators}


def image_figure_inputs(wildcards):
    """The phantom image and every estimator's maps of it."""
    return {"phantom": image_file(wildcards)} | estimator_maps(experiment(wildcards), wildcards.image)


def acquisition(*keys):
    """Params function: the acquisition settings of the phantom wildcard (only ``keys`` when given), as JSON, so
    that a reconstruction setting does not rerun the k-space simulation."""

    def settings(wildcards):
        cfg = experiment(wildcards).acquisition(wildcards.image)
        return as_json({k: v for k, v in cfg.items() if not keys or k in keys})

    return settings


def recon_bias_inputs(wildcards):
    """The phantom and its reconstruction, and every estimator's maps of both."""
    exp, recon = experiment(wildcards), f"{wildcards.image}{RECON_SUFFIX}"
    return ({"phantom": PLAN.path(exp.name, exp.image_file(wildcards.image))}
            | {f"gaussian_{k}": v for k, v in estimator_maps(exp, wildcards.image).items()}
            | {f"recon_{k}": v for k, v in estimator_maps(exp, recon).items()})


def figure_tables(figure):
    """Input function: {estimator: table} of one estimator figure (crbnet.experiment.FIGURES)."""

    def inputs(wildcards):
        exp = experiment(wildcards)
        return {name: PLAN.path(exp.name, rel) for name, rel in exp.figure_tables(figure).items()}

    return inputs


def grid_axis(axis):
    """Params function: the x or y parameter of the grid split the grid figure shows."""
    return lambda wildcards: experiment(wildcards).axis(experiment(wildcards).figures["grid_split"], axis)


def sweep_axis(wildcards):
    """The swept parameter of the parameter sweep's split (a 1-D grid)."""
    return experiment(wildcards).axis(experiment(wildcards).evaluation["parameter_sweep"]["split"], "x")


def write_report():
    """After a run that executed jobs (Snakemake calls onsuccess only then), build {results}/report.html with
    `snakemake --report` on the same experiments and settings (the config as run is saved next to it). Its output
    goes to {results}/logs/report.log, which a failure names together with the command to rerun. A partial run
    (named targets, some of `rule all`'s files absent) leaves the report alone and says so."""
    targets = PLAN.targets()
    missing = [t for t in targets if not Path(t).exists()]
    if missing:
        print(f"report not written: {len(missing)} of {len(targets)} files of `rule all` absent (a partial run), "
              f"e.g. {missing[0]}", file=sys.stderr)
        return
    html = Path(RESULTS) / "report.html"
    settings = Path(RESULTS) / "report_config.yaml"
    log = Path(RESULTS) / "logs" / "report.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(yaml.safe_dump({**config, "experiments": {n: e.config for n, e in EXPERIMENTS.items()}}, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--nolock", "--report", str(html), "--configfile", str(settings),
               "--replace-workflow-config"]
    print("writing", html, file=sys.stderr)
    with open(log, "w") as out:
        failed = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, text=True).returncode != 0
    if failed:
        print(f"report failed (see {log}); rerun: {' '.join(command)}", file=sys.stderr)


