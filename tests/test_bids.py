"""The BIDS derivatives names (crbnet.io.bids): labels, suffixes, collisions, sidecars, dataset description; the
workflow's tree is validated by BIDS's validator in test_workflow."""

import re

import pytest
from crbnet import experiment as ex
from crbnet.io import bids
from crbnet.parameters import ParameterError
from test_experiment import minimal


def test_paths_follow_the_bids_entity_grammar():
    path = bids.map_path("tubes_recon", "bias_reduced", "T2f")
    assert path == "sub-tubesrecon/anat/sub-tubesrecon_desc-biasreduced_T2map.nii.gz"
    grammar = re.compile(r"sub-([A-Za-z0-9]+)/anat/sub-\1_desc-[A-Za-z0-9]+_[A-Za-z0-9]+\.nii\.gz")
    for name in ("m0s", "T1", "T2f", "Rx", "T2s", "R1s", "omega0", "B1", "T2", "R1f", "R2f"):
        for kind in bids.KINDS:
            assert grammar.fullmatch(bids.map_path("brain", "crb", name, kind)), (name, kind)


def test_standard_suffixes_where_bids_has_them_and_no_t2_star_lookalike():
    assert [bids.suffix(n) for n in ("T1", "T2", "T2f", "R1f", "R2f")] == ["T1map", "T2map", "T2map", "R1map",
                                                                         "R2map"]
    custom = [bids.suffix(n) for n in ("m0s", "Rx", "T2s", "R1s", "omega0", "B1")]
    assert all(bids.is_custom(s) for s in custom) and len(set(custom)) == len(custom)
    assert not any(s.startswith("T2s") and s != "T2semisolidmap" for s in custom)  # T2smap would read as T2*
    assert bids.suffix("T1", "sqrtcrb") == "T1sqrtcrb" and bids.is_custom("T1sqrtcrb")
    with pytest.raises(ParameterError, match="T3"):
        bids.suffix("T3")
    with pytest.raises(bids.BidsError, match="kind"):
        bids.suffix("T1", "std")


def test_bidsignore_lists_exactly_the_custom_suffixes():
    lines = bids.bidsignore(["T1map", "m0smap", "T1sqrtcrb", "m0smap"]).splitlines()
    assert lines == ["*_T1sqrtcrb.*", "*_m0smap.*"]


def test_names_that_collide_after_labelling_are_refused():
    with pytest.raises(bids.BidsError, match="both be written"):
        bids.map_files({"p_1": [("crb", "map")], "p1": [("crb", "map")]}, ["T1"])
    with pytest.raises(bids.BidsError, match="both be written"):  # two parameters, one BIDS suffix
        bids.map_files({"p": [("crb", "map")]}, ["T2", "T2f"])
    with pytest.raises(bids.BidsError, match="no letters"):
        bids.label("_-_")
    tubes = {"kind": "tubes", "tissues": {"a": {"T1": 1.0}}}
    exp = ex.Plan.from_config(minimal(phantoms={"p_1": tubes, "p1": tubes}))["e"]
    with pytest.raises(ex.ConfigError, match="experiment e: .*both be written"):
        exp.targets()


def test_sidecar_and_dataset_description():
    car = bids.sidecar("T2s", "s", "a network", ["../maps/x.h5"], "sqrtcrb")
    assert car["Units"] == "s" and car["Sources"] == ["../maps/x.h5"] and car["SkullStripped"] is False
    assert "sqrt(CRB)" in car["Description"] and "semi-solid" in car["Description"]
    description = bids.dataset_description("maps", "0.1.0", "abc123")
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"] == bids.BIDS_VERSION
    assert description["GeneratedBy"][0] == {"Name": "crbnet", "Version": "0.1.0", "Description": "git commit abc123"}
    assert "not run from a git checkout" in bids.dataset_description("maps", "0.1.0", None)["GeneratedBy"][0][
        "Description"]


def test_readme_names_the_custom_suffixes_only():
    text = bids.readme("maps", ["T1map", "m0smap", "T2semisolidmap"])
    assert text.startswith("# maps\n") and "`m0smap`" in text and "`T2semisolidmap`" in text and "`T1map`" not in text
