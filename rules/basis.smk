rule basis:
    """SVD temporal basis of the training fingerprints and its singular-value spectrum."""
    input:
        dataset=basis_input,
    output:
        basis=f"{RESULTS}/{{experiment}}/basis.h5",
        spectrum=f"{RESULTS}/{{experiment}}/tables/basis_spectrum.csv",
    params:
        code=code_digest("basis.py"),
        rank=lambda wc: experiment(wc).get("basis", {}).get("rank", 13),
    cache: True
    log:
        f"{RESULTS}/{{experiment}}/logs/basis.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/basis.py"
