"""The embedded lab: a small but real service on loopback to break and recover."""
