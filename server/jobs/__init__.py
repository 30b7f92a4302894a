"""Durable due work: deadlines stored as rows, run exactly once by any process."""
