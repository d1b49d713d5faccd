"""`ims gemini`: (being written)."""
