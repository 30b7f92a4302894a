"""Presence that outlives no process: per-process leases expire a dead process's connections."""
