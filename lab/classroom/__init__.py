"""The class challenge: a challenge folder, submissions trained the same way, a gallery."""
