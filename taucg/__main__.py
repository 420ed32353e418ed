"""`python -m taucg` is the `taucg` command."""

from taucg.faces.cli.main import main

main()
