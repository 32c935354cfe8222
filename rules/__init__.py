"""rules package (see DESIGN.md)."""
