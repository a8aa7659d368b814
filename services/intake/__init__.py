"""统一接警 — unified intake: one entry for reports from every channel."""
