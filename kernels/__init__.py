"""Shared pure-torch kernels: attention backend dispatch (attention), chunked attention statistics (scoring) and
per-batch token gather/scatter (tokens). Import the submodules directly."""
