"""The Substation Receiver service and the `gla` command line."""
