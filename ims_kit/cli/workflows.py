"""`ims workflows`: (being written)."""
