"""berthd: the daemon (see main)."""
