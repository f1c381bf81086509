rule train_network:
    """One network per configured loss; GPU when resources.gpu > 0 and CUDA is present, else CPU."""
    input:
        unpack(training_inputs),
    output:
        model=f"{RESULTS}/{{experiment}}/models/{{loss}}.pt",
        history=f"{RESULTS}/{{experiment}}/models/{{loss}}_history.csv",
    params:
        config=training_config,
        checkpoint=lambda wc: f"{RESULTS}/{wc.experiment}/models/{wc.loss}.ckpt",
        device=config.get("device", "auto"),
    log:
        f"{RESULTS}/{{experiment}}/logs/train_{{loss}}.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/train_{{loss}}.tsv"
    threads: 8  # capped at --cores; torch uses them for the matrix products
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=24 * 60,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/train_network.py"
