rule kspace:
    """Multi-coil golden-angle radial k-space of a phantom's exact time series (its acquisition settings)."""
    input:
        phantom=f"{RESULTS}/{{experiment}}/phantoms/{{image}}.h5",
        sequence=sequence_file,
    output:
        kspace=f"{RESULTS}/{{experiment}}/kspace/{{image}}.h5",
    params:
        code=code_digest("kspace.py"),
        space=json_setting("parameter_space"),
        acquisition=acquisition("spokes", "coils", "readout_oversampling", "upsample", "snr", "seed"),
        seed=lambda wc: image_config(wc)["seed"],  # the phantom's M0 phase
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/kspace_{{image}}.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/kspace.py"


rule reconstruct:
    """Coefficient images of a phantom's k-space in the experiment's basis (CG or locally low rank; BART with
    engine bart), written as a phantom file for the maps, and their error against the noiseless projection."""
    input:
        kspace=f"{RESULTS}/{{experiment}}/kspace/{{image}}.h5",
        phantom=f"{RESULTS}/{{experiment}}/phantoms/{{image}}.h5",
        basis=basis_file,
        sequence=sequence_file,
    output:
        recon=f"{RESULTS}/{{experiment}}/recon/{{image}}.h5",
        error=report(f"{RESULTS}/{{experiment}}/tables/recon_error_{{image}}.csv",
                     caption="../workflow/report/recon_error.rst", category="Acquisition"),
    params:
        code=code_digest("reconstruct.py"),
        space=json_setting("parameter_space"),
        acquisition=acquisition(),
        seed=lambda wc: image_config(wc)["seed"],
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/reconstruct_{{image}}.log",
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/reconstruct.py"


rule recon_bias:
    """Per-tissue bias of every estimator with Gaussian-noise coefficients and with reconstructed ones (mean over
    the tissue's interior voxels), the table and its figure."""
    input:
        unpack(recon_bias_inputs),
    output:
        table=report(f"{RESULTS}/{{experiment}}/tables/recon_bias_{{image}}.csv",
                     caption="../workflow/report/recon_bias_table.rst", category="Acquisition"),
        png=report(f"{RESULTS}/{{experiment}}/figures/recon_bias_{{image}}.png",
                   caption="../workflow/report/recon_bias.rst", category="Acquisition"),
        pdf=f"{RESULTS}/{{experiment}}/figures/recon_bias_{{image}}.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/recon_bias_{{image}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/recon_bias.py"
