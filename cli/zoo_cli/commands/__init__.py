"""Sub-commands of the zoo command line."""
