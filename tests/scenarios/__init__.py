"""End-to-end scenarios: whole commands, mostly as real processes, against loopback servers and
real databases. Unit tests of one module live at the top level under that module's name."""
