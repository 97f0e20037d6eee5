"""Mime and MimeLite (Karimireddy et al., arXiv 2008.03606): the base optimizers whose state
the server keeps, and the run-config keys the algorithm reads."""
