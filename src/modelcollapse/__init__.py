"""Model collapse laboratory: recursive training, regimes, metrics, theory, lineage."""

__version__ = "0.1.0"
