"""The four post-training methods, one folder each: config.py (dataclass), trainer.py (the loop)."""
