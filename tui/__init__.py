"""cachier-tui: the Textual dashboard (a client of the backend's HTTP API)."""
