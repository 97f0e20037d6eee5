"""Record keys, config keys and Flower actions that the strategies and the ClientApp share.

A Flower message's type is ``"<category>.<action>"``: ``train`` messages of Mime and
MimeLite are ``"train.mime"``, routed by Flower to the ClientApp's ``@app.train("mime")``
step; Mime's gradient phase is ``"query.gradient"``. Everything else uses the default
actions, so Flower's own strategies and ClientApps interoperate.
"""

from __future__ import annotations

from flwr.app import MessageType

# Flower's standard record names, as its own strategies use them.
ARRAYS, CONFIG, METRICS = "arrays", "config", "metrics"
NUM_EXAMPLES = "num-examples"

# Config keys the server sends with every train message.
SERVER_ROUND = "server-round"
MODEL = "model"  # the architecture of the arrays (FedDF's mixed client models)
MODEL_BYTES = "model-bytes"  # the model's size when it travels compressed or pruned

# Query: which data partition a node holds.
PARTITION_ID, NUM_PARTITIONS = "partition-id", "num-partitions"

# Mime and MimeLite (strategies/mime.py, clients/mime_step.py).
MIME_ACTION = "mime"
MIME_TRAIN = f"{MessageType.TRAIN}.{MIME_ACTION}"
GRADIENT_ACTION = "gradient"
GRADIENT_PHASE = f"{MessageType.QUERY}.{GRADIENT_ACTION}"
STATE_KEY, CONTROL_KEY, GRADIENT_KEY = "optimizer-state", "control-variate", "gradient"
BASE_OPTIMIZER, GRADIENT_BATCHES = "base-optimizer", "gradient-batches"

# Secure two-server aggregation (strategies/secure.py, clients/secure_update.py).
SECURE_RECORD = "secure"  # the reply's shares
ORACLE_RECORD = "simulation-update"  # simulation with an omniscient attack only
SECURE_KEY = "secure-key"
SECURE_KEY_CERTIFICATE, SECURE_KEY_SIGNATURE = "secure-key-certificate", "secure-key-signature"
SECURE_CONTEXT, SECURE_CLIP, SECURE_NOISE = "secure-context", "secure-clip", "secure-noise"
SECURE_ORACLE = "secure-oracle"
SECURE_ACTION = "secure"
SECURE_TRAIN = f"{MessageType.TRAIN}.{SECURE_ACTION}"

# Communication compression (clients/compressed_update.py, clients/received_model.py,
# strategies/compressed_traffic.py): a reply's compressed update, and a train message's
# compressed change of the global model since round DOWNLINK_BASE (config), each under
# "<tensor>/<part>", with the model's integer arrays under their own keys.
COMPRESSED = "compressed"
DOWNLINK, DOWNLINK_BASE = "downlink", "downlink-base"

# Two-phase PowerSGD (strategies/powersgd.py, clients/powersgd_step.py): the train message
# carries Q, the reply P_i = M_i Q; the second phase ("query.powersgd") carries the
# orthonormalised mean P, the reply Q_i = M_i^T P. Each under "<tensor>/<factor>".
POWERSGD_ACTION = "powersgd"
POWERSGD_TRAIN = f"{MessageType.TRAIN}.{POWERSGD_ACTION}"
POWERSGD_PHASE = f"{MessageType.QUERY}.{POWERSGD_ACTION}"
FACTORS = "powersgd-factors"

# Pruning (strategies/pruned_model.py, clients/received_model.py): the train message's model,
# pruned and sent sparse (messages/pruned.py).
PRUNED = "pruned"
