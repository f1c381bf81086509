"""What a workflow configuration means: the schema's defaults filled in, the selected experiments, the estimators
and figures each one has, the per-loss training settings, and the files the workflow makes.

rules/common.smk builds a ``Plan`` from Snakemake's config and asks it; nothing here imports Snakemake. Defaults
come from the schema (``schemas/config.schema.yaml``) and nowhere else.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources

import jsonschema
import yaml

from crbnet.io import bids
from crbnet.io.yamlfile import schema_message

SCHEMA_FILE = resources.files("crbnet") / "schemas" / "config.schema.yaml"
SHARED_DATA_KEYS = ("sequence", "parameter_space", "datasets", "basis")


class ConfigError(ValueError):
    """A workflow configuration that breaks the schema or contradicts itself."""


# ------------------------------------------------------------------------------------------ defaults
def schema() -> dict:
    """The workflow configuration's JSON schema."""
    return yaml.safe_load(SCHEMA_FILE.read_text())


def design_defaults() -> dict:
    """The defaults the schema states for a design (``designs.NAME``, ``prior`` included): the ``crbnet design``
    command's defaults too."""
    props = schema()["properties"]["designs"]["additionalProperties"]["properties"]
    out = {k: v["default"] for k, v in props.items() if "default" in v}
    return out | {"prior": {k: v["default"] for k, v in props["prior"]["properties"].items() if "default" in v}}


def _filling_validator() -> type:
    """A Draft 2020-12 validator that sets each property's ``default`` before validating into it, so defaults
    inside defaulted objects are filled too."""
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, subschema):
        if validator.is_type(instance, "object"):
            for key, prop in props.items():
                if "default" in prop and key not in instance:
                    instance[key] = copy.deepcopy(prop["default"])
        yield from check_properties(validator, props, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": properties})


def with_defaults(config: Mapping, fragment: str | None = None) -> dict:
    """A deep copy of ``config`` checked against the schema (or its ``$defs``/property ``fragment``, a JSON pointer
    such as ``/properties/experiments/additionalProperties/properties/basis``) with every default filled in. A
    ConfigError names every offending key at once."""
    full = part = schema()
    for key in fragment.strip("/").split("/") if fragment else ():
        part = part[key]
    part = {**part, "$defs": full["$defs"]}
    out = copy.deepcopy(dict(config))
    errors = sorted(_filling_validator()(part).iter_errors(out), key=lambda e: list(map(str, e.absolute_path)))
    messages = [schema_message(e) for e in errors] + ([] if fragment else _override_errors(out))
    if messages:
        raise ConfigError(f"config: {len(messages)} error(s): " + "; ".join(messages))
    return out


def _override_errors(config: Mapping) -> list[str]:
    """A per-loss override may only name a training key or a key of the losses' own (warm_start, ...): the schema
    leaves the overrides open (a closed one would fill in the training defaults), so a misspelt key is caught here,
    before any job runs."""
    node = schema()
    for key in EXPERIMENT.strip("/").split("/"):
        node = node[key]
    training = node["properties"]["training"]["properties"]
    allowed = (set(training) - {"losses", "train_split", "val_split"}) | set(
        training["losses"]["additionalProperties"]["properties"])
    return [f"experiments/{name}/training/losses/{loss}: '{key}' is not a training option (one of "
            f"{', '.join(sorted(allowed))})"
            for name, exp in (config.get("experiments") or {}).items() if isinstance(exp, Mapping)
            for loss, override in ((exp.get("training") or {}).get("losses") or {}).items()
            if isinstance(override, Mapping) for key in override if key not in allowed]


EXPERIMENT = "/properties/experiments/additionalProperties"


# ------------------------------------------------------------------------------------------ registries
@dataclass(frozen=True)
class EstimatorKind:
    """An estimator the workflow can run: its file under models/ and what it is, for NIfTI sidecars."""

    suffix: str
    description: str


NETWORK_LOSSES = ("mse", "crb", "bias_reduced")
ESTIMATORS: dict[str, EstimatorKind] = {
    "mse": EstimatorKind("pt", "neural network trained with the MSE loss (crbnet)"),
    "crb": EstimatorKind("pt", "neural network trained with the CRB-weighted loss (Zhang et al. 2022)"),
    "bias_reduced": EstimatorKind("pt", "neural network trained with the bias-reduced loss (Mao et al.)"),
    "matching": EstimatorKind("h5", "dictionary matching (maximum normalized inner product in the SVD subspace)"),
    "nlls": EstimatorKind("pt", "non-linear least squares (batched Levenberg-Marquardt, crbnet.fitting) from a "
                                "network's estimates"),
    "refined": EstimatorKind("pt", "a start estimator's estimates refined by damped Gauss-Newton steps of the full "
                                   "model (crbnet.fitting.RefinedEstimator)"),
}
SOURCES = {**{k: v.description for k, v in ESTIMATORS.items()}, "truth": "ground truth of the numerical phantom"}


@dataclass(frozen=True)
class Figure:
    """A figure of an experiment's estimators: the table each estimator contributes (a pattern under
    {results}/{experiment} with {estimator} and the figure settings' keys), its report category, whether only the
    networks take part, and when the experiment can draw it."""

    table: str
    category: str
    applies: Callable[[Experiment], bool]
    networks_only: bool = False
    sweep: str | None = None  # drawn from this sweep (snr_sweep, parameter_sweep): its estimators only


def _evaluated(key: str) -> Callable[[Experiment], bool]:
    return lambda exp: exp.figures[key] in exp.evaluation["splits"]


def _has(key: str) -> Callable[[Experiment], bool]:
    return lambda exp: key in exp.evaluation


TEST_TABLE = "eval/{estimator}_{test_split}.csv"
GRID_TABLE = "eval/{estimator}_{grid_split}.csv"
HISTORY_TABLE = "models/{estimator}_history.csv"
FIGURES: dict[str, Figure] = {
    "loss_curves": Figure(HISTORY_TABLE, "Training", lambda exp: True, networks_only=True),
    "grid_bias_std": Figure(GRID_TABLE, "Bias and variance", _evaluated("grid_split")),
    "bias_histograms": Figure(TEST_TABLE, "Bias and variance", _evaluated("test_split")),
    "std_histograms": Figure(TEST_TABLE, "Bias and variance", _evaluated("test_split")),
    "bias_variance_histograms": Figure(TEST_TABLE, "Bias and variance", _evaluated("test_split")),
    "parameter_contributions": Figure(TEST_TABLE, "Bias and variance", _evaluated("test_split")),
    "snr_contributions": Figure("eval/snr_sweep/{estimator}.csv", "Bias and variance", _has("snr_sweep"),
                                sweep="snr_sweep"),
    "snr_bias_std": Figure("eval/snr_sweep/{estimator}.csv", "Bias and variance", _has("snr_sweep"),
                           sweep="snr_sweep"),
    "sweep_boxplots": Figure("eval/parameter_sweep/{estimator}.csv", "Bias and variance", _has("parameter_sweep"),
                             sweep="parameter_sweep"),
}
IMAGE_FIGURES = ("maps", "roi_boxplots")
RECON_SUFFIX = "_recon"  # the image reconstructed from a phantom's simulated k-space: NAME_recon


# ------------------------------------------------------------------------------------------ one experiment
@dataclass(frozen=True)
class Experiment:
    """One experiment's configuration (defaults filled) and what follows from it. ``owner`` is the experiment whose
    datasets and basis it uses (itself, or its ``data_from``)."""

    name: str
    config: dict
    owner: str

    def __getitem__(self, key: str):
        return self.config[key]

    def __contains__(self, key: str) -> bool:
        return key in self.config

    @property
    def owns_data(self) -> bool:
        return self.owner == self.name

    @property
    def trains(self) -> bool:
        return "training" in self.config

    @property
    def losses(self) -> list[str]:
        """The trained networks, named by their loss."""
        return list(self.config["training"]["losses"]) if self.trains else []

    @property
    def estimators(self) -> list[str]:
        """The estimators the Monte-Carlo evaluation runs: every network, ``matching`` with a dictionary, and
        ``refined`` when configured."""
        return (self.losses + (["matching"] if "dictionary" in self.config else [])
                + (["refined"] if "refined" in self.config else []))

    def swept_estimators(self, sweep: str) -> list[str]:
        """The estimators of a sweep: all of them in the SNR sweep (the refined estimator on its own sample), all but
        the refined estimator in the parameter sweep (every estimate of many draws is kept there)."""
        return [e for e in self.estimators if sweep == "snr_sweep" or e != "refined"]

    def evaluation_size(self, estimator: str, sweep: str | None = None) -> tuple[int, int | None]:
        """(noise realizations, first fingerprints or None for all) of the estimator's Monte-Carlo tables of the
        evaluated splits or of the SNR sweep: the refined estimator's own numbers, capped by the sweep's."""
        settings = self.evaluation if sweep is None else self.evaluation[sweep]
        realizations, fingerprints = settings["realizations"], settings.get("fingerprints")
        if estimator == "refined":
            own = self.config["refined"]
            return own["realizations"], min(own["fingerprints"], fingerprints or own["fingerprints"])
        return realizations, fingerprints

    @property
    def refine_curve_splits(self) -> list[str]:
        """The evaluated grid and test splits of the refined estimator's steps curve (``refined.curve``), or none."""
        if "curve" not in self.config.get("refined", {}):
            return []
        wanted = (self.figures["grid_split"], self.figures["test_split"])
        return [s for s in dict.fromkeys(wanted) if s in self.evaluation["splits"]]

    @property
    def map_estimators(self) -> list[str]:
        """The estimators that map phantoms and scans: the evaluated ones, and NLLS when configured."""
        return self.estimators + (["nlls"] if "nlls" in self.config else [])

    @cached_property
    def basis(self) -> dict | None:
        """The basis settings (schema defaults when the experiment trains but names none), or None without one."""
        if "basis" in self.config:
            return self.config["basis"]
        return with_defaults({}, f"{EXPERIMENT}/properties/basis") if self.trains else None

    @property
    def evaluation(self) -> dict:
        return self.config["evaluation"]

    @property
    def figures(self) -> dict:
        """Figure settings with ``grid_parameter`` as a list."""
        settings = dict(self.config["figures"])
        gp = settings["grid_parameter"]
        return settings | {"grid_parameter": [gp] if isinstance(gp, str) else list(gp)}

    @property
    def images(self) -> dict[str, dict]:
        """Phantoms, their reconstructions and scans by name (names are unique within an experiment)."""
        return {**self.scans, **self.phantom_images}

    @property
    def reconstructions(self) -> dict[str, str]:
        """{image: phantom}: NAME_recon, reconstructed from simulated k-space, for every phantom with an
        ``acquisition``."""
        return {f"{name}{RECON_SUFFIX}": name for name, cfg in self.phantoms.items() if "acquisition" in cfg}

    @property
    def phantom_images(self) -> dict[str, dict]:
        """The images with a truth: phantoms and reconstructions (configured as their phantom, with no sqrt(CRB)
        maps)."""
        return self.phantoms | {image: self.phantoms[p] | {"crb_maps": []} for image, p in self.reconstructions.items()}

    def image_file(self, image: str) -> str:
        """The file (truth, labels and coefficients) of a phantom image under the experiment."""
        if image in self.reconstructions:
            return f"recon/{self.reconstructions[image]}.h5"
        return f"phantoms/{image}.h5"

    def acquisition(self, phantom: str) -> dict:
        """A phantom's acquisition settings, ``snr`` defaulting to the phantom's."""
        cfg = self.phantoms[phantom]
        return {"snr": cfg["snr"]} | cfg["acquisition"]

    @property
    def phantoms(self) -> dict[str, dict]:
        return self.config.get("phantoms", {})  # absent: none (the schema only allows them with training)

    @property
    def scans(self) -> dict[str, dict]:
        return self.config.get("scans", {})

    def training_config(self, loss: str) -> dict:
        """crbnet.training.TrainConfig keys for one network: the shared keys with the loss's overrides applied."""
        shared = {k: v for k, v in self.config["training"].items() if k not in ("losses", "train_split", "val_split")}
        overrides = {k: v for k, v in self.config["training"]["losses"][loss].items() if k != "warm_start"}
        return {**shared, **overrides, "loss": loss}

    def warm_start(self, loss: str) -> str | None:
        return self.config["training"]["losses"][loss].get("warm_start")

    def train_fingerprints(self, loss: str) -> int:
        """Fingerprints a network trains on: train_fingerprints (per loss or shared) or the train split's n."""
        n = self.training_config(loss).get("train_fingerprints")
        return n if n is not None else self.config["datasets"][self.config["training"]["train_split"]]["n"]

    def optimizer_steps(self, loss: str) -> int:
        """Optimizer steps of a network: epochs times batches per epoch, plus those of its warm start."""
        cfg = self.training_config(loss)
        warm = self.warm_start(loss)
        own = cfg["epochs"] * -(-self.train_fingerprints(loss) // cfg["batch_size"])
        return own + (self.optimizer_steps(warm) if warm else 0)

    @property
    def network_figures(self) -> list[str]:
        """The estimator figures this experiment can draw from its evaluation settings."""
        return [name for name, fig in FIGURES.items() if self.trains and fig.applies(self)]

    def failure_tables(self) -> dict[str, str]:
        """{"estimator/split" or "estimator/snr_sweep": Monte-Carlo table under the experiment} of every evaluated
        split and the SNR sweep: what tables/failures.csv summarizes."""
        out = {f"{e}/{split}": f"eval/{e}_{split}.csv" for e in self.estimators for split in self.evaluation["splits"]}
        if "snr_sweep" in self.evaluation:
            out |= {f"{e}/snr_sweep": f"eval/snr_sweep/{e}.csv" for e in self.swept_estimators("snr_sweep")}
        return out

    def figure_tables(self, figure: str) -> dict[str, str]:
        """{estimator: table path under the experiment} of one estimator figure."""
        fig = FIGURES[figure]
        names = self.losses if fig.networks_only else self.swept_estimators(fig.sweep) if fig.sweep else self.estimators
        return {e: fig.table.format(estimator=e, **self.figures) for e in names}

    def model_file(self, estimator: str) -> str | None:
        """The estimator's file under the experiment: models/{loss}.pt, models/matching.h5; for NLLS the network it
        starts from, None when it starts from the prior means (it then needs only the basis)."""
        if estimator == "nlls":
            init = self.config["nlls"]["init"]
            return None if init == "prior" else f"models/{init}.pt"
        if estimator == "refined":
            return self.model_file(self.config["refined"]["start"])
        return f"models/{estimator}.{ESTIMATORS[estimator].suffix}"

    def axis(self, split: str, axis: str) -> str:
        """Name of the ``x`` or ``y`` parameter of a grid split."""
        return self.config["datasets"][split]["grid"][axis]["name"]

    def targets(self) -> list[str]:
        """Every file the workflow makes for this experiment, relative to {results}/{name}."""
        out = []
        datasets, ev = self.config["datasets"], self.evaluation
        if self.owns_data:
            out += [f"data/{split}.h5" for split in datasets]
            out += [f"tables/crb_summary_{split}.csv" for split, spec in datasets.items() if spec["crb"]]
            out.append("figures/sequence.png")
        if "crb_slice" in self.config:
            out.append("figures/crb_slice.png")
        if not self.trains:
            return out
        out += [f"models/{loss}.pt" for loss in self.losses]
        if self.owns_data:
            out.append("basis.cfl")
        if "dictionary" in self.config:
            out.append("models/matching.h5")
        out += [f"eval/{e}_{split}.csv" for e in self.estimators for split in ev["splits"]]
        for sweep in ("snr_sweep", "parameter_sweep"):
            if sweep in ev:
                out += [f"eval/{sweep}/{e}.csv" for e in self.swept_estimators(sweep)]
        out += [f"figures/{figure}.png" for figure in self.network_figures]
        if self.failure_tables():
            out.append("tables/failures.csv")
        if self.refine_curve_splits:
            out += ["tables/refine_steps.csv", "figures/refine_steps.png"]
        if self.figures["test_split"] in ev["splits"]:
            out.append("tables/summary.csv")
        return out + self.map_targets()

    @cached_property
    def bids_maps(self) -> dict[str, tuple[str, str, str, str]]:
        """{path under bids/: (image, source, parameter, kind)} of every map in the BIDS derivatives tree: the truth
        and every estimator's maps of each phantom image, the sqrt(CRB) maps of its crb_maps estimators, every
        estimator's maps of each scan."""
        pairs = {image: [(s, "map") for s in ("truth", *self.map_estimators)] + [(s, "sqrtcrb") for s in cfg["crb_maps"]]
                 for image, cfg in self.phantom_images.items()}
        pairs |= {image: [(s, "map") for s in self.map_estimators] for image in self.scans}
        try:
            return bids.map_files(pairs, self.config["training"]["estimate"])
        except bids.BidsError as err:
            raise ConfigError(f"experiment {self.name}: {err}") from None

    def map_targets(self) -> list[str]:
        """The BIDS derivatives tree of every phantom and scan (bids_maps), the phantoms' figures and, with NLLS, the
        NN-against-NLLS table and figure; the reconstructions' error tables and error curves."""
        out = ["bids/dataset_description.json"] if self.images else []
        out += [f"bids/{path}" for path in self.bids_maps]
        for image in self.phantom_images:
            out += [f"figures/{figure}_{image}.png" for figure in IMAGE_FIGURES]
            if "nlls" in self.config:
                out += [f"figures/nlls_agreement_{image}.png", f"tables/nlls_agreement_{image}.csv"]
        for phantom in self.reconstructions.values():
            out += [f"tables/recon_error_{phantom}.csv", f"tables/recon_bias_{phantom}.csv",
                    f"figures/recon_bias_{phantom}.png", f"figures/recon_steps_{phantom}.png"]
        return out


# ------------------------------------------------------------------------------------------ the whole run
@dataclass(frozen=True)
class Plan:
    """The selected experiments and learning curves of a configuration, defaults filled, and their files under
    ``results``."""

    experiments: dict[str, Experiment]
    learning_curves: dict[str, dict]
    results: str
    device: str
    designs: dict[str, dict] = field(default_factory=dict)
    sequence_comparisons: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping, selected: Iterable[str] | None = None) -> Plan:
        """A Plan of ``config``'s experiments, or only of those named in ``selected`` when it names any. A
        ConfigError for a schema violation or a ``data_from`` that does not describe the same data."""
        full = with_defaults(config)
        names = set(selected or ())
        chosen = {k: _designed_sequence(k, v, full) for k, v in full["experiments"].items() if not names or k in names}
        for name, cfg in chosen.items():
            _check_acquisitions(name, cfg)
        experiments = {name: Experiment(name, cfg, _data_owner(name, chosen)) for name, cfg in chosen.items()}
        curves = {k: v for k, v in full["learning_curves"].items() if set(v["experiments"]) <= set(chosen)}
        comparisons = {k: v for k, v in full["sequence_comparisons"].items() if set(v["experiments"]) <= set(chosen)}
        designs = {k: _design_prior(k, v, full) for k, v in full["designs"].items()}
        return cls(experiments, curves, full["results"], full["device"], designs, comparisons)

    def __getitem__(self, name: str) -> Experiment:
        return self.experiments[name]

    def path(self, experiment: str, relative: str) -> str:
        return f"{self.results}/{experiment}/{relative}"

    def data_file(self, experiment: str, split: str) -> str:
        return self.path(self[experiment].owner, f"data/{split}.h5")

    def basis_file(self, experiment: str) -> str:
        return self.path(self[experiment].owner, "basis.h5")

    def targets(self) -> list[str]:
        """Every file of every selected experiment and learning curve."""
        out = [self.path(name, rel) for name, exp in self.experiments.items() for rel in exp.targets()]
        out += [f"{self.results}/learning_curves/{c}.{ext}" for c in self.learning_curves for ext in ("csv", "png")]
        out += [f"{self.results}/sequence_comparisons/{c}.{ext}" for c in self.sequence_comparisons
                for ext in ("csv", "png")]
        out += [f"{self.results}/claims.{ext}" for ext in ("csv", "png") if self.claims_runs()]
        return out + [f"{self.design_file(d)}{suffix}" for d in self.designs for suffix in (".yaml", "_crb.png")]

    def claims_runs(self) -> dict[str, str]:
        """{run: Monte-Carlo table} of every estimator of every experiment on its test split and, where evaluated,
        its grid split; the run name 'experiment/estimator/test|grid' (``claims_grid_parameters`` carries the grid
        parameters). Experiments that do not evaluate their test split take no part."""
        runs = {}
        for name, exp in self.experiments.items():
            if not exp.trains or exp.figures["test_split"] not in exp.evaluation["splits"]:
                continue
            for role in ("test", "grid"):
                split = exp.figures[f"{role}_split"]
                if split in exp.evaluation["splits"]:
                    runs |= {f"{name}/{e}/{role}": self.path(name, f"eval/{e}_{split}.csv") for e in exp.estimators}
        return runs

    def claims_grid_parameters(self) -> dict[str, list[str]]:
        """{experiment: the grid parameters its figures show} for the claims."""
        return {name: exp.figures["grid_parameter"] for name, exp in self.experiments.items() if exp.trains}

    def sequence_comparison_runs(self, comparison: str) -> dict[str, str]:
        """{run: Monte-Carlo table} of every estimator of a comparison's experiments on its test split; the run
        name 'experiment/estimator' and ``sequence_comparison_sequences`` carry what the table needs."""
        runs = {}
        for name in self.sequence_comparisons[comparison]["experiments"]:
            exp = self[name]
            split = exp.figures["test_split"]
            if split not in exp.evaluation["splits"]:
                raise ConfigError(f"sequence comparison {comparison}: experiment {name} does not evaluate its "
                                  f"test split '{split}'")
            runs |= {f"{name}/{e}": self.path(name, f"eval/{e}_{split}.csv") for e in exp.estimators}
        return runs

    def sequence_comparison_sequences(self, comparison: str) -> dict[str, str]:
        """{experiment: its sequence file} of a comparison."""
        return {name: self[name]["sequence"] for name in self.sequence_comparisons[comparison]["experiments"]}

    def design_file(self, design: str) -> str:
        """{results}/designs/NAME (add .yaml, .h5, _history.csv, _crb.csv, _crb.png)."""
        return f"{self.results}/designs/{design}"

    def design_prior_file(self, design: str) -> str:
        """The parameter space a design over prior draws samples (written by rule design_prior)."""
        return f"{self.results}/designs/priors/{design}.yaml"

    def design_arguments(self, design: str) -> list[str]:
        """The ``crbnet design`` arguments of a design (all but --out)."""
        d = self.designs[design]
        args = ["--sequence", d["start"], "--estimate", ",".join(d["estimate"]), "--iterations", str(d["iterations"]),
                "--lr", repr(d["lr"]), "--knot-spacing", str(d["knot_spacing"]),
                "--trf-window-us", ",".join(repr(float(x)) for x in d["trf_window_us"])]
        for name, values in d["tissues"].items():
            args += ["--tissue", f"{name}:" + ",".join(f"{k}={v!r}" for k, v in values.items())]
        if "prior" in d:
            args += ["--prior", self.design_prior_file(design), "--draws", str(d["prior"]["draws"]), "--draw-seed",
                     str(d["prior"]["seed"])]
            if d["prior"]["rank"] is not None:
                args += ["--rank", str(d["prior"]["rank"]), "--basis-draws", str(d["prior"]["basis_draws"])]
        if d["energy_limit"] is not None:
            args += ["--energy-limit", repr(d["energy_limit"])]
        for other in d["compare"]:
            args += ["--compare", other]
        return args

    def learning_curve_runs(self, curve: str) -> dict[str, str]:
        """{run: Monte-Carlo table} of every network and evaluated split of a learning curve's experiments; the run
        name 'fingerprints/steps/estimator/split/experiment' carries what the figure needs."""
        runs = {}
        for name in self.learning_curves[curve]["experiments"]:
            exp = self[name]
            for loss in exp.losses:
                for split in exp.evaluation["splits"]:
                    run = f"{exp.train_fingerprints(loss)}/{exp.optimizer_steps(loss)}/{loss}/{split}/{name}"
                    runs[run] = self.path(name, f"eval/{loss}_{split}.csv")
        return runs


def _designed_sequence(name: str, cfg: dict, full: Mapping) -> dict:
    """An experiment whose ``sequence`` is ``design:D`` uses the output of design D, {results}/designs/D.yaml."""
    design = cfg["sequence"].removeprefix("design:")
    if design == cfg["sequence"]:
        return cfg
    if design not in full["designs"]:
        raise ConfigError(f"experiment {name}: sequence 'design:{design}' names no entry of designs "
                          f"({', '.join(full['designs']) or 'none'})")
    return cfg | {"sequence": f"{full['results']}/designs/{design}.yaml"}


def _check_acquisitions(name: str, cfg: Mapping) -> None:
    """An acquisition needs a 2-D phantom, and its reconstruction's name NAME_recon must be free."""
    taken = set(cfg.get("phantoms", {})) | set(cfg.get("scans", {}))
    for phantom, settings in cfg.get("phantoms", {}).items():
        if "acquisition" not in settings:
            continue
        if settings["kind"] == "brain" and settings["axial_slice"] is None:
            raise ConfigError(f"experiment {name}, phantom {phantom}: the acquisition is 2-D; set axial_slice")
        if f"{phantom}{RECON_SUFFIX}" in taken:
            raise ConfigError(f"experiment {name}: the reconstruction of phantom {phantom} is named "
                              f"{phantom}{RECON_SUFFIX}, which another phantom or scan already has")


def _design_prior(name: str, design: dict, full: Mapping) -> dict:
    """A design over prior draws carries its experiment's parameter_space (any experiment of the config, selected or
    not); it cannot also name tissues."""
    if "prior" not in design:
        return design
    source = design["prior"]["experiment"]
    if source not in full["experiments"]:
        raise ConfigError(f"design {name}: prior experiment '{source}' is not in the config "
                          f"({', '.join(full['experiments'])})")
    if design["tissues"]:
        raise ConfigError(f"design {name}: prior and tissues exclude each other")
    return design | {"prior": design["prior"] | {"parameter_space": full["experiments"][source]["parameter_space"]}}


def _data_owner(name: str, experiments: Mapping[str, dict]) -> str:
    """The experiment whose datasets and basis ``name`` uses: itself, or its ``data_from``, which must be selected,
    own its data and describe the same data (so the files mean what the experiment says)."""
    owner = experiments[name].get("data_from", name)
    if owner == name:
        return name
    if owner not in experiments or "data_from" in experiments[owner]:
        raise ConfigError(f"experiment {name}: data_from '{owner}' must be a selected experiment with its own data")
    differ = [k for k in SHARED_DATA_KEYS if experiments[name].get(k) != experiments[owner].get(k)]
    if differ:
        raise ConfigError(f"experiment {name}: data_from '{owner}' needs the same {', '.join(differ)}")
    return owner
