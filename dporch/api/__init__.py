"""The control plane: JSON-lines TCP API server and client (one protocol module)."""
