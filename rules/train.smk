rule train_network:
    """One network per configured loss; GPU when resources.gpu > 0 and CUDA is present, else CPU."""
    input:
        unpack(training_inputs),
    output:
        multiext(f"{RESULTS}/{{experiment}}/models/{{loss}}", model=".pt", history="_history.csv"),
    params:
        code=code_digest("train_network.py"),
        config=training_config,
        device=PLAN.device,
    cache: True
    log:
        f"{RESULTS}/{{experiment}}/logs/train_{{loss}}.log",
    threads: 8  # capped at --cores; torch uses them for the matrix products
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=24 * 60,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/train_network.py"
