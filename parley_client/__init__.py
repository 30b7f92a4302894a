"""Parley's client side of the evidence room in Python: the formats of
docs/evidence.md (``parley_client.crypto``) and the ``parley client`` command."""
