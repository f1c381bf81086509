"""crbnet.experiment: schema defaults, the per-loss merge, estimator and figure registries, and the target list."""

import copy
import dataclasses
import inspect
import math
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from crbnet import experiment as ex
from crbnet.fitting import NLLSEstimator, RefinedEstimator
from crbnet.training import TrainConfig

TINY = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
EXP = ("properties", "experiments", "additionalProperties", "properties")


def schema_default(*path: str):
    """The ``default`` the schema file states at ``path`` (read here with PyYAML, not through crbnet)."""
    node = yaml.safe_load((ROOT / "workflow/crbnet/schemas/config.schema.yaml").read_text())
    for key in path:
        node = node[key]
    return node["default"]


def minimal(**extra) -> dict:
    """One experiment with training and nothing optional."""
    cfg = {"sequence": "s.yaml", "parameter_space": {"parameters": {"T1": 1.0}},
           "datasets": {"train": {"n": 100, "seed": 1}, "val": {"n": 10, "seed": 2}, "test": {"n": 5, "seed": 3}},
           "training": {"estimate": ["T1"], "losses": {"crb": {}}}}
    return {"experiments": {"e": cfg | extra}}


def test_defaults_are_filled_at_every_depth_without_overwriting():
    config = copy.deepcopy(TINY)
    filled = ex.with_defaults(config)
    assert config == TINY  # the input is not changed
    tiny = filled["experiments"]["tiny"]
    assert tiny["evaluation"]["snr"] == schema_default(*EXP, "evaluation", "properties", "snr")
    assert tiny["evaluation"]["realizations"] == 10  # given: kept
    assert tiny["training"]["train_split"] == schema_default(*EXP, "training", "properties", "train_split")
    assert tiny["datasets"]["train"]["crb"] is schema_default(*EXP, "datasets", "additionalProperties", "properties",
                                                               "crb")
    fisp = filled["experiments"]["tiny_fisp"]
    axis_scale = yaml.safe_load((ROOT / "workflow/crbnet/schemas/config.schema.yaml").read_text())
    axis_scale = axis_scale["$defs"]["axis"]["properties"]["scale"]["default"]
    assert [axis["scale"] for axis in fisp["dictionary"]["axes"]] == ["log", "log", axis_scale]  # through a $ref
    phantom = tiny["phantoms"]["tubes"]
    assert phantom["size"] == 32 and phantom["seed"] == schema_default(*EXP, "phantoms", "additionalProperties",
                                                                         "properties", "seed")
    display = schema_default(*EXP, "phantoms", "additionalProperties", "properties", "display", "properties",
                             "tissues")
    assert phantom["display"]["tissues"] == display  # inside a defaulted object
    assert ex.Plan.from_config(minimal()).learning_curves == schema_default("properties", "learning_curves")


@pytest.mark.parametrize("change, phrase", [
    (lambda c: c["experiments"]["e"]["datasets"]["train"].update(n=0), "experiments/e/datasets/train/n"),
    (lambda c: c["experiments"]["e"].update(colour="red"), "'colour' was unexpected"),
    (lambda c: c["experiments"]["e"]["training"]["losses"].update(l1={}), "l1"),
])
def test_schema_violations_name_the_key(change, phrase):
    config = minimal()
    change(config)
    with pytest.raises(ex.ConfigError, match=phrase):
        ex.Plan.from_config(config)


def test_every_schema_violation_is_named_at_once_and_numbers_read_as_text_get_the_fix():
    config = minimal()
    e = config["experiments"]["e"]
    e["datasets"]["train"]["n"] = 0
    e["colour"] = "red"
    e["training"]["lr"] = "3e-4"  # what a YAML 1.1 reader (Snakemake's) makes of 3e-4
    e["training"]["losses"]["crb"] = {"epoch": 10}  # a misspelt override
    with pytest.raises(ex.ConfigError) as err:
        ex.Plan.from_config(config)
    message = str(err.value)
    assert message.startswith("config: 4 error(s): ") and "\n" not in message
    for phrase in ("experiments/e/datasets/train/n: 0 is less than the minimum of 1", "'colour' was unexpected",
                   "experiments/e/training/lr: '3e-4' is not of type 'number' (a number read as text",
                   "experiments/e/training/losses/crb: 'epoch' is not a training option (one of"):
        assert phrase in message


def test_per_loss_overrides_win_and_workflow_keys_stay_out():
    config = minimal()
    config["experiments"]["e"]["training"].update(epochs=7, batch_size=32, lr=0.5)
    config["experiments"]["e"]["training"]["losses"] = {"crb": {"epochs": 3},
                                                         "bias_reduced": {"warm_start": "crb", "realizations": 4}}
    exp = ex.Plan.from_config(config)["e"]
    crb, br = exp.training_config("crb"), exp.training_config("bias_reduced")
    assert (crb["epochs"], crb["batch_size"], crb["lr"], crb["loss"]) == (3, 32, 0.5, "crb")
    assert (br["epochs"], br["realizations"], br["loss"]) == (7, 4, "bias_reduced")
    for key in ("losses", "warm_start", "train_split", "val_split"):
        assert key not in crb and key not in br
    TrainConfig.from_mapping(br)  # every key is a TrainConfig field


def test_optimizer_steps_count_batches_and_the_warm_start():
    config = minimal()
    config["experiments"]["e"]["training"].update(epochs=2, batch_size=30)
    config["experiments"]["e"]["training"]["losses"] = {
        "crb": {}, "bias_reduced": {"warm_start": "crb", "epochs": 5, "batch_size": 8, "train_fingerprints": 20}}
    exp = ex.Plan.from_config(config)["e"]
    assert exp.train_fingerprints("crb") == 100 and exp.train_fingerprints("bias_reduced") == 20
    assert exp.optimizer_steps("crb") == 2 * math.ceil(100 / 30)
    assert exp.optimizer_steps("bias_reduced") == 5 * math.ceil(20 / 8) + 2 * math.ceil(100 / 30)


def test_basis_defaults_only_for_experiments_that_train():
    plan = ex.Plan.from_config({"experiments": {
        "trains": minimal()["experiments"]["e"],
        "crb_only": {"sequence": "s.yaml", "parameter_space": {"parameters": {"T1": 1.0}},
                     "datasets": {"train": {"n": 4, "seed": 1}}}}})
    basis = plan["trains"].basis
    assert basis["rank"] == schema_default(*EXP, "basis", "properties", "rank") and basis["split"] == "train"
    assert plan["crb_only"].basis is None
    assert not any(t.startswith("models/") for t in plan["crb_only"].targets())


def test_estimators_and_figures_follow_the_configuration():
    exp = ex.Plan.from_config(minimal())["e"]
    assert exp.estimators == exp.map_estimators == ["crb"]
    assert exp.network_figures == ["loss_curves"]  # nothing evaluated
    targets = exp.targets()
    assert "models/crb.pt" in targets and "tables/summary.csv" not in targets
    assert not any("matching" in t or "nlls" in t for t in targets)

    rich = minimal(evaluation={"splits": ["test"], "snr_sweep": {"split": "test", "values": [10, 20]}},
                   dictionary={"axes": [{"name": "T1", "lower": 0.5, "upper": 2, "n": 3}]},
                   nlls={}, phantoms={"p": {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}, "crb_maps": ["crb"]}})
    exp = ex.Plan.from_config(rich)["e"]
    assert exp.estimators == ["crb", "matching"] and exp.map_estimators == ["crb", "matching", "nlls"]
    assert set(exp.network_figures) == {"loss_curves", "bias_histograms", "std_histograms",
                                        "bias_variance_histograms", "parameter_contributions", "snr_contributions",
                                        "snr_bias_std"}
    targets = set(exp.targets())
    assert {"models/matching.h5", "eval/matching_test.csv", "eval/snr_sweep/matching.csv", "tables/summary.csv",
            "bids/sub-p/anat/sub-p_desc-nlls_T1map.nii.gz", "bids/sub-p/anat/sub-p_desc-truth_T1map.nii.gz",
            "bids/sub-p/anat/sub-p_desc-crb_T1sqrtcrb.nii.gz", "bids/dataset_description.json",
            "figures/nlls_agreement_p.png", "figures/maps_p.png"} <= targets
    assert "bids/sub-p/anat/sub-p_desc-mse_T1sqrtcrb.nii.gz" not in targets
    assert schema_default(*EXP, "nlls", "properties", "init") == "prior" and exp.model_file("nlls") is None
    plan = ex.Plan.from_config(rich)
    assert plan.claims_runs() == {f"e/{e}/test": f"results/e/eval/{e}_test.csv" for e in ("crb", "matching")}
    assert {"results/claims.csv", "results/claims.png"} <= set(plan.targets())
    assert "results/claims.csv" not in ex.Plan.from_config(minimal()).targets()  # nothing evaluated: no claims
    started = ex.Plan.from_config(minimal(nlls={"init": "crb"}, phantoms=rich["experiments"]["e"]["phantoms"]))["e"]
    assert started.model_file("nlls") == "models/crb.pt"
    assert exp.figure_tables("loss_curves") == {"crb": "models/crb_history.csv"}  # networks only
    assert exp.figure_tables("bias_histograms") == {"crb": "eval/crb_test.csv", "matching": "eval/matching_test.csv"}


def test_the_refined_estimator_is_evaluated_and_snr_swept_on_its_own_sample_and_mapped():
    sweeps = {"snr_sweep": {"split": "test", "values": [10, 20], "realizations": 50, "fingerprints": 64},
              "parameter_sweep": {"split": "test", "snr": 20, "realizations": 10}}
    rich = minimal(evaluation={"splits": ["test"], "realizations": 100, **sweeps},
                   refined={"start": "crb", "candidates": {"T1": 4}, "fingerprints": 100, "realizations": 8},
                   phantoms={"p": {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}}})
    exp = ex.Plan.from_config(rich)["e"]
    assert exp.estimators == ["crb", "refined"] and exp.swept_estimators("snr_sweep") == ["crb", "refined"]
    assert exp.swept_estimators("parameter_sweep") == ["crb"]
    assert exp.map_estimators == ["crb", "refined"] and exp.model_file("refined") == "models/crb.pt"
    refined = exp["refined"]
    assert exp.evaluation_size("refined") == (8, 100)
    assert exp.evaluation_size("refined", "snr_sweep") == (8, 64)  # its own draws, at most the sweep's fingerprints
    assert exp.evaluation_size("crb", "snr_sweep") == (50, 64) and exp.evaluation_size("crb") == (100, None)
    assert refined["steps"] == schema_default(*EXP, "refined", "properties", "steps")
    targets = set(exp.targets())
    assert {"eval/refined_test.csv", "bids/sub-p/anat/sub-p_desc-refined_T1map.nii.gz", "eval/snr_sweep/crb.csv",
            "eval/snr_sweep/refined.csv", "eval/parameter_sweep/crb.csv"} <= targets
    assert "eval/parameter_sweep/refined.csv" not in targets
    assert exp.figure_tables("snr_bias_std") == {"crb": "eval/snr_sweep/crb.csv", "refined": "eval/snr_sweep/refined.csv"}
    assert exp.figure_tables("sweep_boxplots") == {"crb": "eval/parameter_sweep/crb.csv"}


def test_selection_and_data_from():
    config = minimal()
    config["experiments"]["f"] = copy.deepcopy(config["experiments"]["e"]) | {"data_from": "e"}
    plan = ex.Plan.from_config(config)
    assert plan["f"].owner == "e" and plan.data_file("f", "train") == "results/e/data/train.h5"
    assert list(ex.Plan.from_config(config, ["e"]).experiments) == ["e"]
    with pytest.raises(ex.ConfigError, match="must be a selected experiment"):
        ex.Plan.from_config(config, ["f"])
    config["experiments"]["f"]["datasets"] = {"train": {"n": 5, "seed": 1}}
    with pytest.raises(ex.ConfigError, match="needs the same datasets"):
        ex.Plan.from_config(config)


def test_learning_curve_runs_name_size_steps_and_split():
    config = minimal(evaluation={"splits": ["test"]})
    config["experiments"]["e2"] = copy.deepcopy(config["experiments"]["e"])
    config["experiments"]["e2"]["training"]["train_fingerprints"] = 50
    config["learning_curves"] = {"lc": {"experiments": ["e", "e2"], "x": "steps"}}
    plan = ex.Plan.from_config(config)
    epochs, batch = (schema_default(*EXP, "training", "properties", k) for k in ("epochs", "batch_size"))
    runs = plan.learning_curve_runs("lc")
    assert runs == {f"100/{epochs * math.ceil(100 / batch)}/crb/test/e": "results/e/eval/crb_test.csv",
                    f"50/{epochs * math.ceil(50 / batch)}/crb/test/e2": "results/e2/eval/crb_test.csv"}
    assert "results/learning_curves/lc.png" in plan.targets()
    assert ex.Plan.from_config(config, ["e"]).learning_curves == {}  # not all its experiments selected


def test_registries_agree_with_the_schema_the_library_and_the_captions():
    node = yaml.safe_load((ROOT / "workflow/crbnet/schemas/config.schema.yaml").read_text())
    for key in EXP:
        node = node[key]
    assert tuple(node["training"]["properties"]["losses"]["propertyNames"]["enum"]) == ex.NETWORK_LOSSES
    assert set(ex.NETWORK_LOSSES) | {"matching", "nlls", "refined"} == set(ex.ESTIMATORS)
    assert node["nlls"]["properties"]["init"]["enum"] == ["prior", *ex.NETWORK_LOSSES]
    assert node["refined"]["properties"]["start"]["enum"] == [*ex.NETWORK_LOSSES, "matching"]
    for figure in [*ex.FIGURES, *ex.IMAGE_FIGURES]:
        assert (ROOT / "workflow/report" / f"{figure}.rst").is_file(), figure
    # the schema states every TrainConfig default (but the loss and the optional subset), and the library agrees
    fields = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
              for f in dataclasses.fields(TrainConfig)}
    stated = {k: v["default"] for k, v in node["training"]["properties"].items() if "default" in v and k in fields}
    assert set(stated) == set(fields) - {"loss", "train_fingerprints"}
    for key, default in stated.items():
        library = fields[key]
        assert (list(library) if isinstance(library, tuple) else library) == default, key
    assert TrainConfig.from_mapping(stated) == TrainConfig()
    nlls = inspect.signature(NLLSEstimator).parameters["iterations"].default
    assert nlls == node["nlls"]["properties"]["iterations"]["default"]
    steps = inspect.signature(RefinedEstimator).parameters["steps"].default
    assert steps == node["refined"]["properties"]["steps"]["default"]


def test_every_shipped_config_resolves():
    """As the workflow reads them: each file merged over config/config.yaml (Snakemake's update_config), its own
    experiments selected (config/seeds.yaml adds seeds to the default experiment)."""
    from snakemake.utils import update_config

    for path in [*Path(ROOT / "config").glob("*.yaml"), ROOT / "tests/config/tiny.yaml"]:
        config, own = yaml.safe_load((ROOT / "config/config.yaml").read_text()), yaml.safe_load(path.read_text())
        update_config(config, own)
        plan = ex.Plan.from_config(config, set(own["experiments"]))
        assert plan.targets(), path


def test_design_arguments_and_targets():
    config = minimal() | {"designs": {"d": {"start": "a.yaml", "estimate": ["m0s", "T1"], "compare": ["b.yaml"],
                                           "tissues": {"wm": {"m0s": 0.2, "T1": 0.9}}}}}
    plan = ex.Plan.from_config(config)
    assert {"results/designs/d.yaml", "results/designs/d_crb.png"} <= set(plan.targets())
    args = plan.design_arguments("d")
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--sequence"] == "a.yaml" and pairs["--estimate"] == "m0s,T1" and pairs["--compare"] == "b.yaml"
    assert pairs["--tissue"] == "wm:m0s=0.2,T1=0.9" and "--energy-limit" not in pairs  # null: the start's energy
    assert pairs["--iterations"] == str(schema_default("properties", "designs", "additionalProperties", "properties",
                                                       "iterations"))
    with pytest.raises(ex.ConfigError, match="designs"):
        ex.Plan.from_config(config | {"designs": {"d": {"start": "a.yaml"}}})


def test_sequence_comparison_runs_every_estimator_on_each_test_split():
    config = copy.deepcopy(TINY)
    plan = ex.Plan.from_config(config)
    runs = plan.sequence_comparison_runs("tiny_fisp")
    assert runs["tiny_fisp/matching"] == "results/tiny/tiny_fisp/eval/matching_test.csv"
    assert {r.split("/")[0] for r in runs} == {"tiny_fisp", "tiny_fisp_12"}
    assert "results/tiny/sequence_comparisons/tiny_fisp.png" in plan.targets()
    assert ex.Plan.from_config(config, ["tiny_fisp"]).sequence_comparisons == {}  # needs all its experiments
    config["experiments"]["tiny_fisp_12"]["evaluation"]["splits"] = []
    with pytest.raises(ex.ConfigError, match="does not evaluate its test split"):
        ex.Plan.from_config(config).sequence_comparison_runs("tiny_fisp")


def test_an_experiment_can_use_a_designs_output():
    config = minimal() | {"designs": {"d": {"start": "a.yaml", "estimate": ["T1"]}}}
    config["experiments"]["e"]["sequence"] = "design:d"
    assert ex.Plan.from_config(config | {"results": "out"})["e"]["sequence"] == "out/designs/d.yaml"
    config["experiments"]["e"]["sequence"] = "design:other"
    with pytest.raises(ex.ConfigError, match="'design:other' names no entry of designs"):
        ex.Plan.from_config(config)


def test_an_acquisition_adds_the_reconstructed_image_and_its_tables():
    tubes = {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}, "snr": 30, "crb_maps": ["crb"]}
    config = minimal(phantoms={"p": tubes | {"acquisition": {"coils": 4}}, "q": tubes})
    exp = ex.Plan.from_config(config)["e"]
    assert exp.reconstructions == {"p_recon": "p"}
    assert exp.image_file("p_recon") == "recon/p.h5" and exp.image_file("p") == "phantoms/p.h5"
    assert exp.phantom_images["p_recon"]["crb_maps"] == []  # no sqrt(CRB) maps of the reconstruction
    settings = exp.acquisition("p")
    assert settings["snr"] == 30 and settings["coils"] == 4  # the phantom's SNR unless set
    assert settings["recon"]["engine"] == schema_default("$defs", "recon", "properties", "engine")  # via $ref
    targets = set(exp.targets())
    assert {"bids/sub-precon/anat/sub-precon_desc-crb_T1map.nii.gz",
            "bids/sub-precon/anat/sub-precon_desc-truth_T1map.nii.gz", "figures/maps_p_recon.png",
            "tables/recon_error_p.csv", "tables/recon_bias_p.csv", "figures/recon_bias_p.png"} <= targets
    assert "bids/sub-precon/anat/sub-precon_desc-crb_T1sqrtcrb.nii.gz" not in targets
    assert not any("q_recon" in t or "qrecon" in t for t in targets)


@pytest.mark.parametrize("phantoms, phrase", [
    ({"b": {"kind": "brain", "axial_slice": None, "tissues": {"a": {"T1": 1.0}}, "acquisition": {}}}, "2-D"),
    ({"p": {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}, "acquisition": {}},
      "p_recon": {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}}}, "p_recon"),
    ({"p": {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}, "acquisition": {"recon": {"engine": "sigpy"}}}}, "engine"),
    ({"p": {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}, "acquisition": {"spokes": 0}}}, "spokes"),
])
def test_acquisitions_that_cannot_run_are_refused(phantoms, phrase):
    with pytest.raises(ex.ConfigError, match=phrase):
        ex.Plan.from_config(minimal(phantoms=phantoms))


def test_a_design_over_prior_draws_names_its_experiments_prior():
    config = minimal() | {"designs": {"d": {"start": "a.yaml", "estimate": ["T1"], "prior": {"experiment": "e"}}}}
    plan = ex.Plan.from_config(config)
    pairs = dict(zip(*[iter(plan.design_arguments("d"))] * 2))
    assert pairs["--prior"] == "results/designs/priors/d.yaml" == plan.design_prior_file("d")
    assert pairs["--draws"] == str(schema_default("properties", "designs", "additionalProperties", "properties",
                                                  "prior", "properties", "draws"))
    space = plan.designs["d"]["prior"]["parameter_space"]
    assert space["parameters"] == config["experiments"]["e"]["parameter_space"]["parameters"]
    assert "--tissue" not in pairs and "--rank" not in pairs  # the full fingerprint's CRB unless a rank is set
    config["designs"]["d"]["prior"]["rank"] = 4
    pairs = dict(zip(*[iter(ex.Plan.from_config(config).design_arguments("d"))] * 2))
    assert pairs["--rank"] == "4" and int(pairs["--basis-draws"]) >= 4
    config["designs"]["d"]["prior"] = {"experiment": "x"}
    with pytest.raises(ex.ConfigError, match="prior experiment 'x'"):
        ex.Plan.from_config(config)
    config["designs"]["d"] |= {"prior": {"experiment": "e"}, "tissues": {"wm": {"T1": 1.0}}}
    with pytest.raises(ex.ConfigError, match="exclude"):
        ex.Plan.from_config(config)


def test_a_scan_is_given_as_coefficients_or_as_raw_data_not_both():
    exp = ex.Plan.from_config(minimal(scans={"s": {"raw": "scan.h5", "virtual_coils": 4}}))["e"]
    assert exp.scans["s"]["recon"] == ex.with_defaults({}, "/$defs/recon")  # the reconstruction's defaults
    assert "bids/sub-s/anat/sub-s_desc-crb_T1map.nii.gz" in exp.targets()
    for bad in ({"raw": "a.h5", "coefficients": "b.nii"}, {"mask": "m.nii"}):
        with pytest.raises(ex.ConfigError, match="scans/s"):
            ex.Plan.from_config(minimal(scans={"s": bad}))
