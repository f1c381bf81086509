rule dictionary:
    """Dictionary matching: atoms simulated on the configured grid, projected on the experiment's basis."""
    input:
        sequence=sequence_file,
        basis=basis_file,
    output:
        dictionary=f"{RESULTS}/{{experiment}}/models/matching.h5",
    params:
        code=code_digest("dictionary.py"),
        space=lambda wc: as_json(experiment(wc)["parameter_space"]),
        axes=lambda wc: as_json(experiment(wc)["dictionary"]["axes"]),
        estimate=lambda wc: experiment(wc)["training"]["estimate"],
        device=config.get("device", "auto"),
    cache: True
    log:
        f"{RESULTS}/{{experiment}}/logs/dictionary.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/dictionary.py"
