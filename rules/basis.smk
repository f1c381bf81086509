rule basis:
    """SVD temporal basis of the training fingerprints and its singular-value spectrum."""
    input:
        dataset=basis_input,
    output:
        basis=f"{RESULTS}/{{experiment}}/basis.h5",
        spectrum=f"{RESULTS}/{{experiment}}/tables/basis_spectrum.csv",
    params:
        code=code_digest("basis.py"),
        rank=lambda wc: experiment(wc).basis["rank"],
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


rule basis_bart:
    """The basis for low-rank reconstruction with BART (pics -B): U (time points x coefficients) as .cfl/.hdr along
    BART's TE (5) and COEFF (6) dimensions."""
    input:
        basis=f"{RESULTS}/{{experiment}}/basis.h5",
    output:
        multiext(f"{RESULTS}/{{experiment}}/basis", cfl=".cfl", hdr=".hdr"),
    log:
        f"{RESULTS}/{{experiment}}/logs/basis_bart.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/basis_bart.py"
