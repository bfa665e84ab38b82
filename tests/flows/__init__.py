"""Saved flows of the demo app (*.mitm), their recording script and the live-replay token swap."""
