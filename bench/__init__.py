"""The chat backend's benchmark: `make bench` (see bench/README.md and docs/performance.md)."""
