"""cachier backend: memcache proxies, control plane and HTTP API in one asyncio loop."""

__version__ = "0.1.0"

# What the memcache protocols report as the server version. libmemcached parses it as a
# numeric major.minor.micro and memccapable switches to 1.6 rules by its first characters.
MEMCACHED_VERSION = "1.6.38"
