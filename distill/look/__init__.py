"""The look tools: read any stage's folder of a run (inspect, samples, plots) and ship one
(export, provenance, hub)."""
