"""Stamen: federated-learning simulation and benchmarking on Flower."""

__version__ = "0.1.0"
