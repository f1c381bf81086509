rule crb_table:
    """Per-parameter summary of the unit CRBs of one split."""
    input:
        dataset=lambda wc: data_file(wc, wc.split),
    output:
        table=f"{RESULTS}/{{experiment}}/tables/crb_summary_{{split}}.csv",
    log:
        f"{RESULTS}/{{experiment}}/logs/crb_table_{{split}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/crb_table.py"


rule crb_slice:
    """CRBs over a regular 2-D slice of parameter space, the other parameters at the prior means."""
    input:
        sequence=sequence_file,
    output:
        table=f"{RESULTS}/{{experiment}}/tables/crb_slice.csv",
    params:
        space=json_setting("parameter_space"),
        slice=json_setting("crb_slice"),
        device=PLAN.device,
    log:
        f"{RESULTS}/{{experiment}}/logs/crb_slice.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/crb_slice.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/crb_slice.py"
