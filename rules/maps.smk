rule phantom:
    """A numerical phantom (true maps and labels) and its noisy coefficient image in the experiment's basis."""
    input:
        sequence=sequence_file,
        basis=basis_file,
    output:
        phantom=f"{RESULTS}/{{experiment}}/phantoms/{{image}}.h5",
    params:
        code=code_digest("phantom.py"),
        space=json_setting("parameter_space"),
        phantom=lambda wc: as_json({k: v for k, v in image_config(wc).items()  # figures, maps and k-space only
                                    if k not in ("display", "crb_maps", "acquisition")}),
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/phantom_{{image}}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/phantom.py"


rule estimate_maps:
    """Maps of the estimated parameters of a phantom or a scan by one estimator (network, dictionary matching, or
    NLLS and the refined estimator on a sample of voxels), with sqrt(CRB) maps at the estimates where configured."""
    input:
        unpack(image_inputs),
        model=model_file,
        sequence=sequence_file,
    output:
        maps=f"{RESULTS}/{{experiment}}/maps/{{image}}/estimates_{{estimator}}.h5",
    params:
        code=code_digest("estimate_maps.py"),
        space=json_setting("parameter_space"),
        phantom=lambda wc: wc.image in experiment(wc).phantom_images,
        nlls=lambda wc: experiment(wc)["nlls"] if wc.estimator == "nlls" else {},  # NLLS settings only rerun NLLS
        refined=refined_settings,
        estimate=setting("training", "estimate"),
        crb=lambda wc: wc.estimator in image_config(wc).get("crb_maps", ()),  # scans: none
        snr=lambda wc: image_config(wc).get("snr"),  # phantoms; scans: None
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/estimate_maps_{{image}}_{{estimator}}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/estimate_maps.py"


rule nifti_map:
    """One parameter map (kind "map") or its sqrt(CRB) map (kind "sqrtcrb") as NIfTI with a JSON sidecar
    (BIDS-derivatives style), from an estimator or the truth."""
    input:
        maps=map_source,
    output:
        multiext(f"{RESULTS}/{{experiment}}/maps/{{image}}/desc-{{source}}_{{parameter}}{{kind}}", nii=".nii.gz",
                 json=".json"),
    params:
        dataset=lambda wc: "truth" if wc.source == "truth" else ("sqrt_crb" if wc.kind == "sqrtcrb" else "estimates"),
        algorithm=lambda wc: SOURCES[wc.source],
    log:
        f"{RESULTS}/{{experiment}}/logs/nifti_{{image}}_{{source}}_{{parameter}}{{kind}}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/nifti_map.py"


rule nlls_agreement:
    """Every network's (and the truth's) maps of a phantom against NLLS in the voxels NLLS fitted: the voxel pairs
    and their median relative differences, overall and per tissue."""
    input:
        unpack(image_figure_inputs),
    output:
        pairs=f"{RESULTS}/{{experiment}}/tables/nlls_pairs_{{image}}.csv",
        table=report(f"{RESULTS}/{{experiment}}/tables/nlls_agreement_{{image}}.csv",
                     caption="../workflow/report/nlls_agreement_table.rst", category="Maps"),
    log:
        f"{RESULTS}/{{experiment}}/logs/nlls_agreement_{{image}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/nlls_agreement.py"
