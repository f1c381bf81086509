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
    threads: 1  # small networks: two jobs of 1 thread train 1.7x faster than one of 2 (benchmarks/train.py);
    # Zhang's 14-layer network gains from more: --set-threads train_network=N (profiles/slurm: 8)
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=24 * 60,
    conda:
        "../envs/training.yaml"
    script:
        "../workflow/scripts/train_network.py"
