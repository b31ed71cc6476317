"""Wire protocols: codecs translate bytes to calls of the one command layer."""
