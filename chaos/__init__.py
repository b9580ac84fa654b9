"""Fault injection against the running stack: kill things, then audit the ledger."""
