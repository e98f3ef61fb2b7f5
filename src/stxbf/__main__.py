"""Run the stxbf command line as `python -m stxbf`."""

from stxbf.cli.main import main

main()
