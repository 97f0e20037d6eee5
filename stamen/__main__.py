"""``python -m stamen`` is the ``stamen`` command."""

from stamen.simulations.cli import main

main()
