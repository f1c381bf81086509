rule kspace:
    """Multi-coil golden-angle radial k-space of a phantom's exact time series (its acquisition settings), also as
    ISMRMRD raw data with noise scans (what a scanner's converter writes; a scan's ``raw:`` can name it)."""
    input:
        phantom=f"{RESULTS}/{{experiment}}/phantoms/{{image}}.h5",
        sequence=sequence_file,
    output:
        kspace=f"{RESULTS}/{{experiment}}/kspace/{{image}}.h5",
        mrd=f"{RESULTS}/{{experiment}}/kspace/{{image}}.ismrmrd.h5",  # the same as scanner raw data, noise scans first
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
    engine bart), written as a phantom file for the maps; their error against the noiseless projection, split into
    the noiseless part's and the noise's, and its curve over CG steps and locally-low-rank weights."""
    input:
        kspace=f"{RESULTS}/{{experiment}}/kspace/{{image}}.h5",
        phantom=f"{RESULTS}/{{experiment}}/phantoms/{{image}}.h5",
        basis=basis_file,
        sequence=sequence_file,
    output:
        recon=f"{RESULTS}/{{experiment}}/recon/{{image}}.h5",
        error=report(f"{RESULTS}/{{experiment}}/tables/recon_error_{{image}}.csv",
                     caption="../workflow/report/recon_error.rst", category="Acquisition"),
        curve=report(f"{RESULTS}/{{experiment}}/tables/recon_steps_{{image}}.csv",
                     caption="../workflow/report/recon_steps_table.rst", category="Acquisition"),
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


rule plot_recon_steps:
    """The reconstruction's error over CG steps (the whole, its noiseless part, its noise alone) and locally low
    rank, from the small table of rule reconstruct."""
    input:
        table=f"{RESULTS}/{{experiment}}/tables/recon_steps_{{image}}.csv",
    output:
        png=report(f"{RESULTS}/{{experiment}}/figures/recon_steps_{{image}}.png",
                   caption="../workflow/report/recon_steps.rst", category="Acquisition"),
        pdf=f"{RESULTS}/{{experiment}}/figures/recon_steps_{{image}}.pdf",
    params:
        acquisition=acquisition("recon"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_recon_steps_{{image}}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/plot_recon_steps.py"


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


rule import_raw:
    """A scan's ISMRMRD raw data as k-space in the sequence's frames: readouts binned by TR, prewhitened with its noise
    scans, compressed to virtual coils, coil maps estimated from the data (crbnet.io.mrd)."""
    input:
        raw=lambda wc: experiment(wc).scans[wc.image]["raw"],
        sequence=sequence_file,
    output:
        kspace=f"{RESULTS}/{{experiment}}/raw/{{image}}/kspace.h5",
    params:
        scan=lambda wc: as_json({k: v for k, v in experiment(wc).scans[wc.image].items() if k != "recon"}),
    log:
        f"{RESULTS}/{{experiment}}/logs/import_raw_{{image}}.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/import_raw.py"


rule reconstruct_raw:
    """Coefficient images of an imported scan in the experiment's basis (the scan's recon settings), which every
    estimator then maps like a scan given as coefficients."""
    input:
        kspace=f"{RESULTS}/{{experiment}}/raw/{{image}}/kspace.h5",
        basis=basis_file,
    output:
        coefficients=f"{RESULTS}/{{experiment}}/raw/{{image}}/coefficients.h5",
    params:
        recon=lambda wc: as_json(experiment(wc).scans[wc.image]["recon"]),
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/reconstruct_raw_{{image}}.log",
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/reconstruct_raw.py"
