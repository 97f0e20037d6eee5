"""Byzantine attacks: client-side ones (run in the ClientApp) and omniscient colluding ones
(server-side simulation only), a registry of both, and the seeded choice of Byzantine clients.

Every module of this package is imported here, so an attack registers itself by being a
file in it.
"""

from stamen.attacks.alie import ALIE, alie_z
from stamen.attacks.base import CLIENT, OMNISCIENT, ClientAttack, OmniscientAttack
from stamen.attacks.client_attacks import GaussianNoise, LabelFlip, Scaled, SignFlip, Zero
from stamen.attacks.ipm import IPM
from stamen.attacks.krum_attack import KrumAttack
from stamen.attacks.mimic import Mimic, MimicState
from stamen.attacks.min_max import MinMax, MinSum, perturbation
from stamen.attacks.registry import ATTACKS, create_attack
from stamen.attacks.selection import byzantine_clients
from stamen.registry import import_package_modules

import_package_modules(__name__, __path__)

__all__ = [
    "ALIE",
    "ATTACKS",
    "CLIENT",
    "ClientAttack",
    "GaussianNoise",
    "IPM",
    "KrumAttack",
    "LabelFlip",
    "Mimic",
    "MimicState",
    "MinMax",
    "MinSum",
    "OMNISCIENT",
    "OmniscientAttack",
    "Scaled",
    "SignFlip",
    "Zero",
    "alie_z",
    "byzantine_clients",
    "create_attack",
    "perturbation",
]
