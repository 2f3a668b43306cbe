"""A real ComfyUI booted headless in-process, tiny models of its real classes, and stand-in nodes for tiny runs."""
