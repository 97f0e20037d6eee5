"""Stamen: federated-learning simulation and benchmarking on Flower."""

import torch

__version__ = "0.1.0"

# Every process that imports Stamen (the CLI, bench workers, Ray actors, flwr-clientapp)
# flushes denormal floats to zero on the CPU. Saturated LSTM gates fill backward passes
# with denormals, which x86 CPUs process ~100x slower: a Shakespeare Mime-Adam run went
# from 17 s to 3 minutes per round, with the same results to the printed digits.
torch.set_flush_denormal(True)
