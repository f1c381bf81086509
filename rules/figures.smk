rule plot_sequence:
    """Flip angles and pulse durations of the experiment's sequence."""
    input:
        sequence=sequence_file,
    output:
        png=report(f"{RESULTS}/{{experiment}}/figures/sequence.png", caption="../workflow/report/sequence.rst",
                   category="Sequence"),
        pdf=f"{RESULTS}/{{experiment}}/figures/sequence.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_sequence.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/plot_sequence.py"


rule plot_crb_slice:
    """sqrt(CRB) maps over the configured 2-D slice, read from the small slice table."""
    input:
        table=f"{RESULTS}/{{experiment}}/tables/crb_slice.csv",
    output:
        png=report(f"{RESULTS}/{{experiment}}/figures/crb_slice.png", caption="../workflow/report/crb_slice.rst",
                   category="Cramer-Rao bounds"),
        pdf=f"{RESULTS}/{{experiment}}/figures/crb_slice.pdf",
    params:
        slice=lambda wc: as_json(experiment(wc)["crb_slice"]),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_crb_slice.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/plot_crb_slice.py"
