"""The only layer that touches the network, gpg or the cache."""
