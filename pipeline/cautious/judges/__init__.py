"""The canary judges: per-instance samples in, pass / fail / not-enough-data with evidence out."""
