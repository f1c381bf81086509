"""crbnet: Cramer-Rao-bound informed neural-network parameter estimation for quantitative MRI."""

__version__ = "0.1.0"
