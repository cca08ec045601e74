"""What an operator reads: metrics (metrics.py), log hygiene (logs.py). A leaf of the project."""
