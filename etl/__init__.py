"""roomsync: copy SignalWire Video room sessions into a SQL database."""

__version__ = "0.1.0"
