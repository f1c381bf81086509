rule evaluate:
    """Monte-Carlo bias and variance per fingerprint of one split at the evaluation SNR, for a trained network,
    dictionary matching or the refined estimator (on its own number of fingerprints and draws)."""
    input:
        model=model_file,
        dataset=lambda wc: data_file(wc, wc.split),
        sequence=sequence_file,
    output:
        table=f"{RESULTS}/{{experiment}}/eval/{{estimator}}_{{split}}.csv",
    params:
        snrs=lambda wc: [experiment(wc).evaluation["snr"]],
        realizations=lambda wc: experiment(wc).evaluation_size(wc.estimator)[0],
        seed=setting("evaluation", "seed"),
        fingerprints=lambda wc: experiment(wc).evaluation_size(wc.estimator)[1],  # None: all
        refined=refined_settings,
        space=json_setting("parameter_space"),
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/evaluate_{{estimator}}_{{split}}.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/evaluate_{{estimator}}_{{split}}.tsv"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/evaluate.py"


rule snr_sweep:
    """Monte-Carlo bias and variance over a range of SNRs on (the first fingerprints of) one split, for Zhang
    Fig. 7 (a random set) and Mao Fig. 2 (a single white-matter point); the refined estimator on its own sample."""
    input:
        model=model_file,
        dataset=split_file("evaluation", "snr_sweep", "split"),
        sequence=sequence_file,
    output:
        table=f"{RESULTS}/{{experiment}}/eval/snr_sweep/{{estimator}}.csv",
    params:
        snrs=setting("evaluation", "snr_sweep", "values"),
        realizations=lambda wc: experiment(wc).evaluation_size(wc.estimator, "snr_sweep")[0],
        seed=setting("evaluation", "seed"),
        fingerprints=lambda wc: experiment(wc).evaluation_size(wc.estimator, "snr_sweep")[1],  # None: all
        refined=refined_settings,
        space=json_setting("parameter_space"),
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/snr_sweep_{{estimator}}.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/snr_sweep_{{estimator}}.tsv"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/evaluate.py"


rule parameter_sweep:
    """Every estimate over a 1-D parameter sweep at one SNR, for box plots and Welch t-tests (Mao Fig. 1)."""
    input:
        model=model_file,
        dataset=split_file("evaluation", "parameter_sweep", "split"),
    output:
        table=f"{RESULTS}/{{experiment}}/eval/parameter_sweep/{{estimator}}.csv",
    params:
        snr=setting("evaluation", "parameter_sweep", "snr"),
        realizations=setting("evaluation", "parameter_sweep", "realizations"),
        seed=setting("evaluation", "seed"),
    log:
        f"{RESULTS}/{{experiment}}/logs/parameter_sweep_{{estimator}}.log",
    threads: 4
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/parameter_sweep.py"


rule refine_steps:
    """The refined estimator's start refined by each number of Gauss-Newton steps, and NLLS from the prior means,
    on the same noise draws of the first fingerprints of the grid and test splits (refined.curve)."""
    input:
        unpack(refine_curve_inputs),
    output:
        table=report(f"{RESULTS}/{{experiment}}/tables/refine_steps.csv",
                     caption="../workflow/report/refine_steps_table.rst", category="Bias and variance"),
    params:
        splits=lambda wc: experiment(wc).refine_curve_splits,
        refined=json_setting("refined"),
        snr=lambda wc: experiment(wc).evaluation["snr"],
        seed=setting("evaluation", "seed"),
        space=json_setting("parameter_space"),
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/refine_steps.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/refine_steps.tsv"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/refine_steps.py"
