"""The `taucg` command line, one module per command family; ``main`` wires
them. Kept import-free so that importing a command module costs only what
that module needs."""
