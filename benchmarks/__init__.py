"""minihymba's benchmark suite: ``python -m benchmarks.run [--quick] [--json out.json]`` (see README.md)."""
