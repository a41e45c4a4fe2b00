"""Post-processing of raw model outputs, shared by every op: boxes (IoU, NMS), heads, scores."""
