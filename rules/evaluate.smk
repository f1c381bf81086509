rule evaluate:
    """Monte-Carlo bias and variance per fingerprint of one split at the evaluation SNR, for a trained network or
    dictionary matching."""
    input:
        model=model_file,
        dataset=lambda wc: data_file(wc, wc.split),
    output:
        table=f"{RESULTS}/{{experiment}}/eval/{{estimator}}_{{split}}.csv",
    params:
        snrs=lambda wc: [evaluation(wc).get("snr", 50)],
        realizations=lambda wc: evaluation(wc).get("realizations", 300),
        seed=lambda wc: evaluation(wc).get("seed", 0),
        fingerprints=lambda wc: evaluation(wc).get("fingerprints"),
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
    Fig. 7 (a random set) and Mao Fig. 2 (a single white-matter point)."""
    input:
        model=model_file,
        dataset=lambda wc: data_file(wc, evaluation(wc)["snr_sweep"]["split"]),
    output:
        table=f"{RESULTS}/{{experiment}}/eval/snr_sweep/{{estimator}}.csv",
    params:
        snrs=lambda wc: evaluation(wc)["snr_sweep"]["values"],
        realizations=lambda wc: evaluation(wc)["snr_sweep"].get("realizations", 100),
        seed=lambda wc: evaluation(wc).get("seed", 0),
        fingerprints=lambda wc: evaluation(wc)["snr_sweep"].get("fingerprints"),
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


rule sweep_estimates:
    """Every estimate over a 1-D parameter sweep at one SNR, for box plots and Welch t-tests (Mao Fig. 1)."""
    input:
        model=model_file,
        dataset=lambda wc: data_file(wc, evaluation(wc)["sweep"]["split"]),
    output:
        table=f"{RESULTS}/{{experiment}}/eval/sweep/{{estimator}}.csv",
    params:
        snr=lambda wc: evaluation(wc)["sweep"].get("snr", 20),
        realizations=lambda wc: evaluation(wc)["sweep"].get("realizations", 100),
        seed=lambda wc: evaluation(wc).get("seed", 0),
    log:
        f"{RESULTS}/{{experiment}}/logs/sweep_estimates_{{estimator}}.log",
    threads: 4
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/sweep_estimates.py"
