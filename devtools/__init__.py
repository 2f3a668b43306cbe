"""Developer tools, not published: the ComfyUI test harness and the example-workflow tooling."""
