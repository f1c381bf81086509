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


rule bids_map:
    """One parameter map (kind "map") or its sqrt(CRB) map (kind "sqrtcrb") of an estimator or the truth, as NIfTI
    with its JSON sidecar in the experiment's BIDS derivatives tree (crbnet.io.bids)."""
    input:
        maps=bids_source,
    output:
        multiext(f"{RESULTS}/{{experiment}}/bids/sub-{{subject}}/anat/sub-{{subject}}_desc-{{desc}}_{{suffix}}",
                 nii=".nii.gz", json=".json"),
    params:
        map=bids_entry,
        algorithm=lambda wc: SOURCES[bids_entry(wc)["source"]],
    log:
        f"{RESULTS}/{{experiment}}/logs/bids_{{subject}}_{{desc}}_{{suffix}}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/bids_map.py"


rule bids_description:
    """The BIDS derivatives tree's dataset_description.json (crbnet's version and git commit), README.md and
    .bidsignore (the custom suffixes)."""
    output:
        description=f"{RESULTS}/{{experiment}}/bids/dataset_description.json",
        ignore=f"{RESULTS}/{{experiment}}/bids/.bidsignore",
        readme=f"{RESULTS}/{{experiment}}/bids/README.md",
    params:
        version=crbnet.__version__,
        commit=GIT_COMMIT,
        suffixes=lambda wc: sorted({bids.suffix(name, kind) for _, _, name, kind in experiment(wc).bids_maps.values()}),
    log:
        f"{RESULTS}/{{experiment}}/logs/bids_description.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/bids_description.py"


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
