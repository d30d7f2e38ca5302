"""Tier 4: what happens when things go wrong, and hostile input; each module's outcomes feed one summary."""
