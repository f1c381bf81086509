rule design_sequence:
    """A CRB-optimal hybrid-state pattern (crbnet design): flip angles and pulse durations that minimize the
    summed relative CRBs of the estimated parameters over the tissues, within the hardware window and the RF
    energy of the start; resumable from its checkpoint."""
    input:
        start=lambda wc: PLAN.designs[wc.design]["start"],
        compare=lambda wc: PLAN.designs[wc.design]["compare"],
        prior=lambda wc: [PLAN.design_prior_file(wc.design)] if "prior" in PLAN.designs[wc.design] else [],
    output:
        sequence=f"{RESULTS}/designs/{{design}}.yaml",
        pattern=f"{RESULTS}/designs/{{design}}.h5",
        history=f"{RESULTS}/designs/{{design}}_history.csv",
        table=f"{RESULTS}/designs/{{design}}_crb.csv",
    params:
        code=code_digest("design_sequence.py"),
        arguments=lambda wc: as_json(PLAN.design_arguments(wc.design)),
    log:
        f"{RESULTS}/logs/design_{{design}}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/design_sequence.py"


rule plot_design:
    """The designed pattern next to its start and the compared sequences: flip angles and sqrt(CRB) per tissue and
    parameter."""
    input:
        sequence=f"{RESULTS}/designs/{{design}}.yaml",
        table=f"{RESULTS}/designs/{{design}}_crb.csv",
    output:
        png=report(f"{RESULTS}/designs/{{design}}_crb.png", caption="../workflow/report/design.rst",
                   category="Sequence design"),
        pdf=f"{RESULTS}/designs/{{design}}_crb.pdf",
    params:
        start=lambda wc: PLAN.designs[wc.design]["start"],
        compare=lambda wc: PLAN.designs[wc.design]["compare"],
        draws=lambda wc: "prior" in PLAN.designs[wc.design],
    log:
        f"{RESULTS}/logs/plot_design_{{design}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/plot_design.py"


rule design_prior:
    """The parameter space a design over prior draws samples: its experiment's parameter_space as YAML, the file
    the design's command names."""
    output:
        prior=f"{RESULTS}/designs/priors/{{design}}.yaml",
    params:
        code=code_digest("design_prior.py"),
        space=lambda wc: as_json(PLAN.designs[wc.design]["prior"]["parameter_space"]),
    log:
        f"{RESULTS}/logs/design_prior_{{design}}.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/physics.yaml"
    script:
        "../workflow/scripts/design_prior.py"
