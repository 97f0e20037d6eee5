"""Secure two-server Byzantine-robust aggregation (He, Karimireddy, Jaggi, arXiv 2006.04747).

Pure parts (ring arithmetic, sharing, Beaver triples) know nothing of Flower or sockets.
"""
