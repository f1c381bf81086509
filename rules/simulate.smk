rule simulate_dataset:
    """Seeded fingerprints for one split: signals, SVD coefficients and unit CRBs (M0 = 1, sigma = 1) of the full
    fingerprint and of the coefficients."""
    input:
        unpack(simulate_inputs),
    output:
        dataset=f"{RESULTS}/{{experiment}}/data/{{split}}.h5",
    params:
        code=code_digest("simulate_dataset.py"),
        space=json_setting("parameter_space"),
        split=lambda wc: as_json(experiment(wc)["datasets"][wc.split]),
        device=PLAN.device,
    cache: True
    log:
        f"{RESULTS}/{{experiment}}/logs/simulate_{{split}}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/simulate_dataset.py"
