"""A tiny WAN 2.1 trained on procedural clips, for benchmarks where quality numbers mean something."""
