"""Per technique: the variants the benchmark runs against the unpatched model (``variants(family)``)."""
