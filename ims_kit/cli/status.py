"""`ims status`: (being written)."""
