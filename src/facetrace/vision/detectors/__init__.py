"""Face detectors: image in, boxes with five landmarks and a score out (core.types.Detection)."""
