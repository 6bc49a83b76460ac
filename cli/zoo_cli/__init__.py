"""The zoo command line (Typer)."""
