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


# Estimator figures: one rule each, all drawn by workflow/scripts/plot_evaluation.py from small tables; every
# figure but the loss curves also shows dictionary matching when the experiment has a dictionary.
HISTORY = "{results}/{experiment}/models/{loss}_history.csv"
TEST = "{results}/{experiment}/eval/{loss}_{test_split}.csv"
NETWORK_FIGURES = {
    "loss_curves": (HISTORY, "Training"),
    "grid_bias_std": ("{results}/{experiment}/eval/{loss}_{grid_split}.csv", "Bias and variance"),
    "bias_histograms": (TEST, "Bias and variance"),
    "std_histograms": (TEST, "Bias and variance"),
    "bias_variance_histograms": (TEST, "Bias and variance"),
    "parameter_contributions": (TEST, "Bias and variance"),
    "snr_contributions": ("{results}/{experiment}/eval/snr_sweep/{loss}.csv", "Bias and variance"),
    "snr_bias_std": ("{results}/{experiment}/eval/snr_sweep/{loss}.csv", "Bias and variance"),
    "sweep_boxplots": ("{results}/{experiment}/eval/sweep/{loss}.csv", "Bias and variance"),
}


for figure, (pattern, category) in NETWORK_FIGURES.items():

    rule:
        name:
            f"fig_{figure}"
        input:
            unpack(per_estimator(pattern, networks_only=figure == "loss_curves")),
        output:
            png=report(f"{RESULTS}/{{experiment}}/figures/{figure}.png",
                       caption=f"../workflow/report/{figure}.rst", category=category),
            pdf=f"{RESULTS}/{{experiment}}/figures/{figure}.pdf",
        params:
            x=grid_axis_param("x", figure == "grid_bias_std"),
            y=grid_axis_param("y", figure == "grid_bias_std"),
            parameter=lambda wc: figure_settings(experiment(wc))["grid_parameter"],
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
        histories=lambda wc: list(per_estimator(HISTORY, networks_only=True)(wc).values()),
        tests=lambda wc: list(per_estimator(TEST)(wc).values()),
        grids=lambda wc: list(per_estimator("{results}/{experiment}/eval/{loss}_{grid_split}.csv")(wc).values())
        if "grid_bias_std" in network_figures(experiment(wc))
        else [],
    output:
        table=report(f"{RESULTS}/{{experiment}}/tables/summary.csv", caption="../workflow/report/summary.rst",
                     category="Summary"),
    params:
        losses=losses,
        estimators=estimators,
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


for figure, caption in (("maps", "maps"), ("roi_boxplots", "roi_boxplots")):

    rule:
        name:
            f"fig_{figure}"
        input:
            unpack(phantom_figure_inputs),
        output:
            png=report(f"{RESULTS}/{{experiment}}/figures/{figure}_{{phantom}}.png",
                       caption=f"../workflow/report/{caption}.rst", category="Maps"),
            pdf=f"{RESULTS}/{{experiment}}/figures/{figure}_{{phantom}}.pdf",
        params:
            display=(lambda wc: as_json(image_config(wc)["display"])) if figure == "maps" else None,
        log:
            f"{RESULTS}/{{experiment}}/logs/fig_{figure}_{{phantom}}.log",
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
        pairs=f"{RESULTS}/{{experiment}}/tables/nlls_pairs_{{phantom}}.csv",
    output:
        png=report(f"{RESULTS}/{{experiment}}/figures/nlls_agreement_{{phantom}}.png",
                   caption="../workflow/report/nlls_agreement.rst", category="Maps"),
        pdf=f"{RESULTS}/{{experiment}}/figures/nlls_agreement_{{phantom}}.pdf",
    log:
        f"{RESULTS}/{{experiment}}/logs/fig_nlls_agreement_{{phantom}}.log",
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
        unpack(learning_curve_runs),
    output:
        table=report(f"{RESULTS}/learning_curves/{{curve}}.csv", caption="../workflow/report/learning_curve_table.rst",
                     category="Learning curves"),
        png=report(f"{RESULTS}/learning_curves/{{curve}}.png", caption="../workflow/report/learning_curve.rst",
                   category="Learning curves"),
        pdf=f"{RESULTS}/learning_curves/{{curve}}.pdf",
    params:
        x=lambda wildcards: learning_curves()[wildcards.curve]["x"],
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
