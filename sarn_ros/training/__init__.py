"""Training loop (resumable, time-boxed, DDP-ready)."""
