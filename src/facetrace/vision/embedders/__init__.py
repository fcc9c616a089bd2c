"""Face embedders: aligned crops in, L2-normalised vectors out."""
