"""Configuration, database and security plumbing of the Computing Platform."""
