"""Live video: sources, sessions and fan-out, with the pure per-frame parts (tracking, zones, motion)."""
