"""The wire contract between Stamen's strategies and its ClientApp (``flwr.app`` only):
record and config keys and actions (``keys``), the one array packing (``arrays``) and the
reply checks (``replies``)."""
