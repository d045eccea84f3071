"""File formats: load, validate once at the edge, dump. One module per format."""
