"""`python -m etl` runs the roomsync command line."""

from .cli import main

main(prog_name="roomsync")
