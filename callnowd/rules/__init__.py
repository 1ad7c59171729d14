"""Pure decision engine: availability, preferences, per-caller rules."""
