"""Running several daz instances on one database: room leases (and the Kryten bridge hook)."""
