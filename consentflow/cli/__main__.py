"""``python -m consentflow.cli``: the command line, as the ``consentflow`` script runs it."""

from consentflow.cli import main

main()
