"""`python -m cspm_registry`: the same as the `cspm-registry` console script."""

from cspm_registry.cli import main

main()
