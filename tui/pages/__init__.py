"""One module per view; each is a Textual screen used as an app mode."""
