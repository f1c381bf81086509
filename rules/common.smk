# Helpers shared by the rules: config validation, paths and per-experiment settings. No rules here.
import json
import subprocess
import sys
from pathlib import Path

import yaml

from snakemake.utils import validate

validate(config, "../workflow/schemas/config.schema.yaml")

RESULTS = config.get("results", "results")


def selected_experiments():
    """All configured experiments, or, when config files are given with --configfile, only the experiments those
    files define: `--configfile my.yaml` runs my.yaml's experiments, not the default one as well."""
    names = set()
    for path in workflow.overwrite_configfiles or []:
        with open(path) as f:
            names |= set((yaml.safe_load(f) or {}).get("experiments", {}))
    return {k: v for k, v in config["experiments"].items() if not names or k in names}


EXPERIMENTS = selected_experiments()
SHARED_DATA_KEYS = ("sequence", "parameter_space", "datasets", "basis")


def data_owner(name):
    """The experiment whose datasets and basis experiment ``name`` uses: itself, or its ``data_from`` (which must
    be selected and describe the same data, so the files mean what the experiment says)."""
    owner = EXPERIMENTS[name].get("data_from", name)
    if owner == name:
        return name
    if owner not in EXPERIMENTS or "data_from" in EXPERIMENTS[owner]:
        raise ValueError(f"experiment {name}: data_from '{owner}' must be a selected experiment with its own data")
    differ = [k for k in SHARED_DATA_KEYS if EXPERIMENTS[name].get(k) != EXPERIMENTS[owner].get(k)]
    if differ:
        raise ValueError(f"experiment {name}: data_from '{owner}' needs the same {', '.join(differ)}")
    return owner


for _name in EXPERIMENTS:
    data_owner(_name)


def learning_curves():
    """The configured learning curves whose experiments are all selected."""
    return {k: v for k, v in config.get("learning_curves", {}).items() if set(v["experiments"]) <= set(EXPERIMENTS)}


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    split="[A-Za-z0-9_-]+",
    loss="mse|crb|bias_reduced",
    estimator="mse|crb|bias_reduced|matching|nlls",
    source="mse|crb|bias_reduced|matching|nlls|truth",
    phantom="[A-Za-z0-9_-]+",
    parameter="[A-Za-z0-9]+",
    kind="map|sqrtcrb",
    curve="[A-Za-z0-9_-]+",


def experiment(wildcards):
    """The config block of the experiment named by the wildcard."""
    return EXPERIMENTS[wildcards.experiment]


def sequence_file(wildcards):
    return experiment(wildcards)["sequence"]


def code_digest(script):
    """Digest of the crbnet modules that a script imports, a param of the expensive rules. A change to the package
    code thus reruns them and keys Snakemake's between-workflow cache (--cache)."""
    sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
    from crbnet.provenance import source_digest

    return source_digest(Path(workflow.basedir) / "workflow" / "scripts" / script)


def as_json(value):
    """Config sub-trees travel to scripts as JSON strings, so that a changed value reruns the rule."""
    return json.dumps(value, sort_keys=True)


def data_file(wildcards, split):
    return f"{RESULTS}/{data_owner(wildcards.experiment)}/data/{split}.h5"


def basis_file(wildcards):
    return f"{RESULTS}/{data_owner(wildcards.experiment)}/basis.h5"


def basis_split(exp):
    """The split the SVD basis is computed from, or None when the experiment uses no basis."""
    if "basis" not in exp and "training" not in exp:
        return None
    return exp.get("basis", {}).get("split", "train")


def basis_input(wildcards):
    return data_file(wildcards, basis_split(experiment(wildcards)))


def simulate_inputs(wildcards):
    """The sequence and, for every split but the basis split, the basis (coefficients and their CRBs)."""
    inputs = {"sequence": sequence_file(wildcards)}
    split = basis_split(experiment(wildcards))
    if split is not None and wildcards.split != split:
        inputs["basis"] = basis_file(wildcards)
    return inputs


def training_inputs(wildcards):
    """Train and validation splits, the basis and, for a warm start, the network it starts from."""
    cfg = experiment(wildcards)["training"]
    inputs = {
        "train": data_file(wildcards, cfg.get("train_split", "train")),
        "val": data_file(wildcards, cfg.get("val_split", "val")),
        "basis": basis_file(wildcards),
    }
    warm = cfg["losses"][wildcards.loss].get("warm_start")
    if warm:
        inputs["warm"] = f"{RESULTS}/{wildcards.experiment}/models/{warm}.pt"
    return inputs


def training_config(wildcards):
    """crbnet.training.TrainConfig keys for one loss: the shared keys with the loss's overrides applied."""
    cfg = dict(experiment(wildcards)["training"])
    overrides = dict(cfg.pop("losses")[wildcards.loss])
    for key in ("train_split", "val_split"):
        cfg.pop(key, None)
    overrides.pop("warm_start", None)
    return as_json({**cfg, **overrides, "loss": wildcards.loss})


def evaluation(wildcards):
    return experiment(wildcards).get("evaluation", {})


def losses(wildcards):
    return list(experiment(wildcards)["training"]["losses"])


def exp_estimators(exp):
    """The trained networks (named by loss) and, with a dictionary, dictionary matching ("matching")."""
    return list(exp["training"]["losses"]) + (["matching"] if "dictionary" in exp else [])


def estimators(wildcards):
    return exp_estimators(experiment(wildcards))


def map_estimators(exp):
    """The estimators that map phantoms and scans: those evaluated, and NLLS when configured (maps only)."""
    return exp_estimators(exp) + (["nlls"] if "nlls" in exp else [])


def model_file(wildcards):
    """The estimator file: models/{loss}.pt for a network, models/matching.h5 for dictionary matching; for NLLS the
    network it starts from."""
    if wildcards.estimator == "nlls":
        return f"{RESULTS}/{wildcards.experiment}/models/{experiment(wildcards)['nlls'].get('init', 'crb')}.pt"
    suffix = "h5" if wildcards.estimator == "matching" else "pt"
    return f"{RESULTS}/{wildcards.experiment}/models/{wildcards.estimator}.{suffix}"


def image_config(wildcards):
    """The config of the phantom or scan named by the wildcard (their names are unique within an experiment)."""
    exp = experiment(wildcards)
    return {**exp.get("scans", {}), **exp.get("phantoms", {})}[wildcards.phantom]


def image_inputs(wildcards):
    """A phantom's file, or a scan's coefficient image and optional mask (the user's files)."""
    exp = experiment(wildcards)
    if wildcards.phantom in exp.get("phantoms", {}):
        return {"data": f"{RESULTS}/{wildcards.experiment}/phantoms/{wildcards.phantom}.h5"}
    scan = exp["scans"][wildcards.phantom]
    return {"data": scan["coefficients"]} | ({"mask": scan["mask"]} if "mask" in scan else {})


def map_source(wildcards):
    """The phantom file (truth) or an estimator's maps."""
    base = f"{RESULTS}/{wildcards.experiment}"
    if wildcards.source == "truth":
        return f"{base}/phantoms/{wildcards.phantom}.h5"
    return f"{base}/maps/{wildcards.phantom}/estimates_{wildcards.source}.h5"


def phantom_figure_inputs(wildcards):
    """The phantom and every estimator's maps of it."""
    base = f"{RESULTS}/{wildcards.experiment}"
    return {"phantom": f"{base}/phantoms/{wildcards.phantom}.h5"} | {
        name: f"{base}/maps/{wildcards.phantom}/estimates_{name}.h5" for name in map_estimators(experiment(wildcards))}


ESTIMATION_ALGORITHMS = {
    "mse": "neural network trained with the MSE loss (crbnet)",
    "crb": "neural network trained with the CRB-weighted loss (Zhang et al. 2022)",
    "bias_reduced": "neural network trained with the bias-reduced loss (Mao et al.)",
    "matching": "dictionary matching (maximum normalized inner product in the SVD subspace)",
    "nlls": "non-linear least squares (batched Levenberg-Marquardt, crbnet.fitting) from a network's estimates",
    "truth": "ground truth of the numerical phantom",
}


def map_outputs(name, exp):
    """NIfTI maps of every phantom of an experiment (truth and every estimator, each estimated parameter; sqrt(CRB)
    maps of the estimators listed in crb_maps), its two figures and, with NLLS, the NN-against-NLLS table and figure;
    and every estimator's maps of every scan."""
    out = []
    estimate = exp["training"]["estimate"]
    for phantom, cfg in exp.get("phantoms", {}).items():
        pattern = f"{RESULTS}/{name}/maps/{phantom}/desc-{{source}}_{{parameter}}{{kind}}.nii.gz"
        out += expand(pattern, source=["truth", *map_estimators(exp)], parameter=estimate, kind="map")
        out += expand(pattern, source=cfg.get("crb_maps", []), parameter=estimate, kind="sqrtcrb")
        out += expand(f"{RESULTS}/{name}/figures/{{figure}}_{phantom}.png", figure=["maps", "roi_boxplots"])
        if "nlls" in exp:
            out += [f"{RESULTS}/{name}/figures/nlls_agreement_{phantom}.png",
                    f"{RESULTS}/{name}/tables/nlls_agreement_{phantom}.csv"]
    for scan in exp.get("scans", {}):
        out += expand(f"{RESULTS}/{name}/maps/{scan}/desc-{{source}}_{{parameter}}map.nii.gz",
                      source=map_estimators(exp), parameter=estimate)
    return out


def figure_settings(exp):
    """Which splits the figures use, with defaults; grid_parameter as a list."""
    settings = {"test_split": "test", "grid_split": "grid_T1_T2f", "grid_parameter": "T2f"} | exp.get("figures", {})
    gp = settings["grid_parameter"]
    return settings | {"grid_parameter": [gp] if isinstance(gp, str) else list(gp)}


def per_estimator(pattern, networks_only=False):
    """Input function: {estimator: pattern formatted with experiment and estimator (as {loss})} for every trained
    network and, unless ``networks_only``, dictionary matching."""

    def inputs(wildcards):
        exp = experiment(wildcards)
        names = losses(wildcards) if networks_only else exp_estimators(exp)
        return {name: pattern.format(results=RESULTS, experiment=wildcards.experiment, loss=name,
                                     **figure_settings(exp)) for name in names}

    return inputs


def grid_axis(wildcards, axis):
    """Name of the x or y parameter of the grid split the grid figure shows."""
    exp = experiment(wildcards)
    return exp["datasets"][figure_settings(exp)["grid_split"]]["grid"][axis]["name"]


def sweep_axis(wildcards):
    """Name of the swept parameter of the sweep split (a 1-D grid)."""
    exp = experiment(wildcards)
    return exp["datasets"][exp["evaluation"]["sweep"]["split"]]["grid"]["x"]["name"]


def grid_axis_param(axis, enabled):
    """Params function for the grid axis (bound now, not in a loop's closure), or None for other figures."""
    return (lambda wildcards: grid_axis(wildcards, axis)) if enabled else None


def network_figures(exp):
    """Names of the network figures this experiment can draw from its evaluation settings."""
    if "training" not in exp:
        return []
    ev, fig = exp.get("evaluation", {}), figure_settings(exp)
    names = ["loss_curves"]
    if fig["test_split"] in ev.get("splits", []):
        names += ["bias_histograms", "std_histograms", "bias_variance_histograms", "parameter_contributions"]
    if fig["grid_split"] in ev.get("splits", []):
        names.append("grid_bias_std")
    if "snr_sweep" in ev:
        names += ["snr_contributions", "snr_bias_std"]
    if "sweep" in ev:
        names.append("sweep_boxplots")
    return names


def all_outputs():
    out = []
    for name, exp in EXPERIMENTS.items():
        own = data_owner(name) == name
        if own:
            out += expand(f"{RESULTS}/{name}/data/{{split}}.h5", split=exp["datasets"])
            with_crb = [k for k, v in exp["datasets"].items() if v.get("crb", True)]
            out += expand(f"{RESULTS}/{name}/tables/crb_summary_{{split}}.csv", split=with_crb)
            out.append(f"{RESULTS}/{name}/figures/sequence.png")
        if "crb_slice" in exp:
            out.append(f"{RESULTS}/{name}/figures/crb_slice.png")
        if "training" in exp:
            out += expand(f"{RESULTS}/{name}/models/{{loss}}.pt", loss=exp["training"]["losses"])
            if own:
                out.append(f"{RESULTS}/{name}/basis.cfl")
            if "dictionary" in exp:
                out.append(f"{RESULTS}/{name}/models/matching.h5")
            evaluated = exp_estimators(exp)
            ev = exp.get("evaluation", {})
            out += expand(f"{RESULTS}/{name}/eval/{{e}}_{{split}}.csv", e=evaluated, split=ev.get("splits", []))
            if "snr_sweep" in ev:
                out += expand(f"{RESULTS}/{name}/eval/snr_sweep/{{e}}.csv", e=evaluated)
            if "sweep" in ev:
                out += expand(f"{RESULTS}/{name}/eval/sweep/{{e}}.csv", e=evaluated)
            out += expand(f"{RESULTS}/{name}/figures/{{figure}}.png", figure=network_figures(exp))
            if figure_settings(exp)["test_split"] in ev.get("splits", []):
                out.append(f"{RESULTS}/{name}/tables/summary.csv")
            out += map_outputs(name, exp)
    for curve in learning_curves():
        out += expand(f"{RESULTS}/learning_curves/{curve}.{{ext}}", ext=("csv", "png"))
    return out


def write_report():
    """After a run that executed jobs (Snakemake calls onsuccess only then), build {results}/report.html with
    `snakemake --report` on the same experiments and settings (the config as run is saved next to it). Its output
    goes to {results}/logs/report.log, which a failure names together with the command to rerun."""
    html = Path(RESULTS) / "report.html"
    settings = Path(RESULTS) / "report_config.yaml"
    log = Path(RESULTS) / "logs" / "report.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(yaml.safe_dump({**config, "experiments": EXPERIMENTS}, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--nolock", "--report", str(html), "--configfile", str(settings),
               "--replace-workflow-config"]
    print("writing", html, file=sys.stderr)
    with open(log, "w") as out:
        failed = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, text=True).returncode != 0
    if failed:
        print(f"report failed (see {log}); rerun: {' '.join(command)}", file=sys.stderr)


def train_fingerprints(exp, loss):
    """Number of fingerprints a network trains on: train_fingerprints (per loss or shared) or the train split's n."""
    training = exp["training"]
    n = training["losses"][loss].get("train_fingerprints", training.get("train_fingerprints"))
    return n if n is not None else exp["datasets"][training.get("train_split", "train")]["n"]


def optimizer_steps(exp, loss):
    """Optimizer steps of a network: epochs times batches per epoch (per-loss settings over shared ones), plus those
    of the network it was warm-started from."""
    training = exp["training"]
    epochs, batch = (training["losses"][loss].get(k, training[k]) for k in ("epochs", "batch_size"))
    warm = training["losses"][loss].get("warm_start")
    return epochs * -(-train_fingerprints(exp, loss) // batch) + (optimizer_steps(exp, warm) if warm else 0)


def learning_curve_runs(wildcards):
    """{run: Monte-Carlo table} of every network and evaluated split of a learning curve's experiments; the run
    name 'fingerprints/steps/estimator/split/experiment' carries what the figure needs."""
    runs = {}
    for name in learning_curves()[wildcards.curve]["experiments"]:
        exp = EXPERIMENTS[name]
        for loss in exp["training"]["losses"]:
            for split in exp.get("evaluation", {}).get("splits", []):
                run = f"{train_fingerprints(exp, loss)}/{optimizer_steps(exp, loss)}/{loss}/{split}/{name}"
                runs[run] = f"{RESULTS}/{name}/eval/{loss}_{split}.csv"
    return runs
