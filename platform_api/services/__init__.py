"""Domain logic of the Computing Platform, independent of HTTP."""
