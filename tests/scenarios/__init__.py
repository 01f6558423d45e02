"""End-to-end scenarios: the problems the project once fixed, each run through the real CLI,
real processes and signals, the stand-ins over loopback and both databases."""
