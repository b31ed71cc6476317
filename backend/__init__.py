"""cachier backend: memcache proxies on the serving loop; control plane and HTTP API on a
control thread with its own asyncio loop (``backend.loops``)."""

__version__ = "0.1.0"

# What the memcache protocols report as the server version. libmemcached parses it as a
# numeric major.minor.micro and memccapable switches to 1.6 rules by its first characters.
MEMCACHED_VERSION = "1.6.38"
