"""Real peer servers for the mcstatbot tests: each starts on loopback on a free port and stops cleanly."""
