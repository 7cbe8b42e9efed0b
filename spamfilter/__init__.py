"""SMS spam filter: data, text processing, model, metrics and tracking for the DVC pipeline."""

__version__ = "0.1.0"
