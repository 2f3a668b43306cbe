"""The ComfyUI plumbing every FreeAccel node shares: block-replacement chaining and ComfyUI version differences."""
