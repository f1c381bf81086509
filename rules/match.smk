rule matching_estimator:
    """Dictionary matching: atoms simulated on the configured grid, projected on the experiment's basis."""
    input:
        sequence=sequence_file,
        basis=basis_file,
    output:
        estimator=f"{RESULTS}/{{experiment}}/models/matching.h5",
    params:
        code=code_digest("matching_estimator.py"),
        space=json_setting("parameter_space"),
        axes=json_setting("dictionary", "axes"),
        estimate=setting("training", "estimate"),
        device=PLAN.device,
    cache: True
    log:
        f"{RESULTS}/{{experiment}}/logs/matching_estimator.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/matching_estimator.py"
