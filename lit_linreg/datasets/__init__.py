"""Data sources beyond the tutorial's synthetic line."""
