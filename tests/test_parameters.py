import numpy as np
import pytest
import torch

from crbnet.parameters import (PARAMETERIZATIONS, ParameterError, ParameterSpace, infer_parameterization, validate)

ZHANG = {
    "parameterization": "apparent_t1",
    "parameters": {
        "m0s": {"dist": "truncnorm", "mean": 0.12, "std": 0.08, "lower": 0.0, "upper": 0.5},
        "T1": {"dist": "truncnorm", "mean": 1.6, "std": 0.8, "lower": 0.1, "upper": 5.0},
        "T2f": {"dist": "truncnorm", "mean": 0.1, "std": 0.2, "lower": 1e-3, "upper": 2.0},
        "Rx": {"dist": "truncnorm", "mean": 44, "std": 20, "lower": 0.0, "upper": 200},
        "T2s": {"dist": "uniform", "lower": 5e-6, "upper": 25e-6},
        "omega0": {"dist": "uniform", "lower": -1795.2, "upper": 1795.2},
        "B1": {"dist": "truncnorm", "mean": 1.0, "std": 0.3, "lower": 0.3, "upper": 1.7},
    },
    "constraints": ["T2f <= T1"],
}


def test_sampling_is_seeded_bounded_and_constrained():
    space = ParameterSpace.from_config(ZHANG)
    a, b = space.sample(5000, seed=7), space.sample(5000, seed=7)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["T1"], space.sample(5000, seed=8)["T1"])
    assert np.all(a["T2f"] <= a["T1"])
    for name, prior in space.priors.items():
        assert prior.lower <= a[name].min() and a[name].max() <= prior.upper
    # the truncated normal keeps its centre: sample mean of m0s near the analytic truncated mean
    from scipy import stats
    expected = stats.truncnorm.mean(-0.12 / 0.08, (0.5 - 0.12) / 0.08, loc=0.12, scale=0.08)
    assert a["m0s"].mean() == pytest.approx(expected, abs=0.005)


def test_samples_do_not_depend_on_the_order_of_the_priors_in_the_config():
    """The workflow hands scripts the config as sorted JSON and the CLI reads it in file order: both must draw the
    same fingerprints."""
    reordered = {**ZHANG, "parameters": dict(reversed(list(ZHANG["parameters"].items())))}
    a = ParameterSpace.from_config(ZHANG).sample(100, seed=3)
    b = ParameterSpace.from_config(reordered).sample(100, seed=3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_grid_holds_other_parameters_at_prior_means():
    grid = ParameterSpace.from_config(ZHANG).grid({"T1": np.array([0.5, 1.0, 2.0]), "T2f": np.array([0.05, 0.1])})
    assert grid["T1"].tolist() == [0.5, 0.5, 1.0, 1.0, 2.0, 2.0] and grid["T2f"].tolist() == [0.05, 0.1] * 3
    assert np.all(grid["Rx"] == 44) and np.all(grid["omega0"] == 0.0)


def test_apparent_t1_maps_to_canonical():
    pz = PARAMETERIZATIONS["apparent_t1"]
    c = pz.to_canonical({k: torch.tensor(v) for k, v in pz.defaults.items()})
    assert float(c["R1f"]) == float(c["R1s"]) == pytest.approx(1 / 1.6) and float(c["R2f"]) == pytest.approx(10.0)


@pytest.mark.parametrize("config, phrase", [
    ({**ZHANG, "parameterization": "cartesian"}, "unknown parameterization"),
    ({**ZHANG, "parameters": {**ZHANG["parameters"], "R1f": 1.0}}, "not in the apparent_t1"),
    ({**ZHANG, "parameters": {**ZHANG["parameters"], "T3": 1.0}}, "unknown parameter 'T3'"),
    ({**ZHANG, "parameters": {k: v for k, v in ZHANG["parameters"].items() if k != "B1"}}, "lacks B1"),
    ({**ZHANG, "parameters": {**ZHANG["parameters"], "B1": {"dist": "gamma", "lower": 0.5, "upper": 1}}}, "dist"),
    ({**ZHANG, "parameters": {**ZHANG["parameters"], "T1": {"dist": "uniform", "lower": -1, "upper": 2}}}, "T1=-1"),
    ({**ZHANG, "constraints": ["T2f << T1"]}, "constraint"),
])
def test_bad_parameter_spaces(config, phrase):
    with pytest.raises(ParameterError, match=phrase):
        ParameterSpace.from_config(config)


def test_validation_and_inference_messages():
    with pytest.raises(ParameterError, match=r"m0s=1\.2 1 is outside"):
        validate({"m0s": 1.2})
    with pytest.raises(ParameterError, match="finite"):
        validate({"R2f": np.nan})
    with pytest.raises(ParameterError, match="cannot be combined"):
        infer_parameterization(["T1", "R2f"])
    assert infer_parameterization(["T2f"]).name == "apparent_t1" and infer_parameterization(["m0s"]).name == "canonical"
    with pytest.raises(ParameterError, match="not part of the canonical"):
        PARAMETERIZATIONS["canonical"].complete({"T1": 1.0})


def test_point_takes_the_prior_means_for_the_rest():
    space = ParameterSpace.from_config({"parameterization": "apparent_t1", "parameters": {
        "m0s": {"dist": "truncnorm", "mean": 0.12, "std": 0.08, "lower": 0.0, "upper": 0.5},
        "T1": {"dist": "uniform", "lower": 0.5, "upper": 2.5}, "T2f": 0.08, "Rx": 20.0, "T2s": 1.2e-5,
        "omega0": 0.0, "B1": 1.0}})
    point = space.point({"T1": 1.1})
    assert {k: float(v[0]) for k, v in point.items()} == {"m0s": 0.12, "T1": 1.1, "T2f": 0.08, "Rx": 20.0,
                                                           "T2s": 1.2e-5, "omega0": 0.0, "B1": 1.0}
    assert float(space.point({})["T1"][0]) == 1.5  # centre of a uniform prior
    with pytest.raises(ParameterError, match="R1f"):
        space.point({"R1f": 1.0})
    with pytest.raises(ParameterError, match="T1"):
        space.point({"T1": -1.0})


def test_prior_scale_is_the_std_of_a_uniform_and_the_std_parameter_of_a_truncated_normal():
    from crbnet.parameters import Prior

    uniform = Prior("uniform", 5e-6, 25e-6)
    draws = uniform.sample(np.random.default_rng(0), 200_000)
    assert uniform.scale == pytest.approx(np.std(draws), rel=0.01)
    assert Prior("truncnorm", 0.0, 0.5, mean=0.12, std=0.08).scale == 0.08
