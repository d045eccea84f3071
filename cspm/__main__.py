"""`python -m cspm`: the same as the `cspm` command."""

from cspm.cli.main import main

main()
