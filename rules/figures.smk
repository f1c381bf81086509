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


# Estimator figures (crbnet.experiment.FIGURES): one rule each, all drawn by workflow/scripts/plot_evaluation.py from
# small tables; every figure but the loss curves also shows dictionary matching when the experiment has a dictionary.
for figure, spec in FIGURES.items():

    rule:
        name:
            f"fig_{figure}"
        input:
            unpack(figure_tables(figure)),
        output:
            png=report(f"{RESULTS}/{{experiment}}/figures/{figure}.png",
                       caption=f"../workflow/report/{figure}.rst", category=spec.category),
            pdf=f"{RESULTS}/{{experiment}}/figures/{figure}.pdf",
        params:
            x=grid_axis("x") if figure == "grid_bias_std" else None,
            y=grid_axis("y") if figure == "grid_bias_std" else None,
            parameter=lambda wc: experiment(wc).figures["grid_parameter"],
            swept=sweep_axis if figure == "sweep_boxplots" else None,
        log:
            f"{RESULTS}/{{experiment}}/logs/fig_{figure}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/plotting.yaml"
        script:
            "../workflow/scripts/plot_evaluation.py"


rule summary_table:
    """Headline numbers per estimator and parameter (test-set CRB-loss, bias/variance parts and std/sqrt(CRB) with
    bootstrap intervals, grid bias, final losses)."""
    input:
        histories=lambda wc: list(figure_tables("loss_curves")(wc).values()),
        tests=lambda wc: list(figure_tables("bias_histograms")(wc).values()),
        grids=lambda wc: list(figure_tables("grid_bias_std")(wc).values())
        if "grid_bias_std" in experiment(wc).network_figures
        else [],
    output:
        table=report(f"{RESULTS}/{{experiment}}/tables/summary.csv", caption="../workflow/report/summary.rst",
                     category="Summary"),
    params:
        losses=lambda wc: experiment(wc).losses,
        estimators=lambda wc: experiment(wc).estimators,
    log:
        f"{RESULTS}/{{experiment}}/logs/summary_table.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/summary_table.py"


rule plot_refine_steps:
    """Bias and std against sqrt(CRB) per number of refinement steps, with NLLS from the prior means."""
    input:
        table=f"{RESULTS}/{{experiment}}/tables/refine_steps.csv",
    output:
        png=report(f"{RESULTS}/{{experiment}}/figures/refine_steps.png", caption="../workflow/report/refine_steps.rst",
                   category="Bias and variance"),
        pdf=f"{RESULTS}/{{experiment}}/figures/refine_steps.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_refine_steps.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/plot_refine_steps.py"


rule failure_table:
    """Where the estimators fail, per evaluated split or SNR-sweep table, SNR and parameter: fractions of estimates
    out of range or at the prior's edge, of fingerprints with an undefined CRB or a NaN mean (crbnet.tables)."""
    input:
        tables=lambda wc: [PLAN.path(wc.experiment, t) for t in experiment(wc).failure_tables().values()],
    output:
        table=report(f"{RESULTS}/{{experiment}}/tables/failures.csv", caption="../workflow/report/failures.rst",
                     category="Summary"),
    params:
        names=lambda wc: list(experiment(wc).failure_tables()),
    log:
        f"{RESULTS}/{{experiment}}/logs/failure_table.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/failure_table.py"


for figure in IMAGE_FIGURES:

    rule:
        name:
            f"fig_{figure}"
        input:
            unpack(image_figure_inputs),
        output:
            png=report(f"{RESULTS}/{{experiment}}/figures/{figure}_{{image}}.png",
                       caption=f"../workflow/report/{figure}.rst", category="Maps"),
            pdf=f"{RESULTS}/{{experiment}}/figures/{figure}_{{image}}.pdf",
        params:
            display=(lambda wc: as_json(image_config(wc)["display"])) if figure == "maps" else None,
        log:
            f"{RESULTS}/{{experiment}}/logs/fig_{figure}_{{image}}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/plotting.yaml"
        script:
            "../workflow/scripts/plot_maps.py"


rule fig_nlls_agreement:
    """Mao Fig. 4 analogue: network estimates against NLLS, voxel by voxel, from the small pair table."""
    input:
        pairs=f"{RESULTS}/{{experiment}}/tables/nlls_pairs_{{image}}.csv",
    output:
        png=report(f"{RESULTS}/{{experiment}}/figures/nlls_agreement_{{image}}.png",
                   caption="../workflow/report/nlls_agreement.rst", category="Maps"),
        pdf=f"{RESULTS}/{{experiment}}/figures/nlls_agreement_{{image}}.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/fig_nlls_agreement_{{image}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/plot_agreement.py"


rule learning_curve:
    """CRB-loss per parameter against the training-set size or the optimizer steps (networks of several
    experiments), train vs held-out."""
    input:
        unpack(lambda wc: PLAN.learning_curve_runs(wc.curve)),
    output:
        table=report(f"{RESULTS}/learning_curves/{{curve}}.csv", caption="../workflow/report/learning_curve_table.rst",
                     category="Learning curves"),
        png=report(f"{RESULTS}/learning_curves/{{curve}}.png", caption="../workflow/report/learning_curve.rst",
                   category="Learning curves"),
        pdf=f"{RESULTS}/learning_curves/{{curve}}.pdf",
    params:
        x=lambda wc: PLAN.learning_curves[wc.curve]["x"],
    log:
        f"{RESULTS}/learning_curves/logs/{{curve}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/learning_curve.py"


rule sequence_comparison:
    """Every estimator of several experiments (one per sequence) on their test splits: CRB-loss per parameter and
    the median sqrt(CRB) with each sequence."""
    input:
        unpack(lambda wc: PLAN.sequence_comparison_runs(wc.comparison)),
    output:
        table=report(f"{RESULTS}/sequence_comparisons/{{comparison}}.csv",
                     caption="../workflow/report/sequence_comparison_table.rst", category="Sequence design"),
        png=report(f"{RESULTS}/sequence_comparisons/{{comparison}}.png",
                   caption="../workflow/report/sequence_comparison.rst", category="Sequence design"),
        pdf=f"{RESULTS}/sequence_comparisons/{{comparison}}.pdf",
    params:
        sequences=lambda wc: as_json(PLAN.sequence_comparison_sequences(wc.comparison)),
    log:
        f"{RESULTS}/sequence_comparisons/logs/{{comparison}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/sequence_comparison.py"


rule claims:
    """The papers' claims tested on every experiment that can test them: measured figure, interval, verdict."""
    input:
        unpack(lambda wc: PLAN.claims_runs()),
    output:
        table=report(f"{RESULTS}/claims.csv", caption="../workflow/report/claims_table.rst", category="Claims"),
        png=report(f"{RESULTS}/claims.png", caption="../workflow/report/claims.rst", category="Claims"),
        pdf=f"{RESULTS}/claims.pdf",
    params:
        grid_parameters=lambda wc: as_json(PLAN.claims_grid_parameters()),
    log:
        f"{RESULTS}/logs/claims.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/plotting.yaml"
    script:
        "../workflow/scripts/claims.py"
