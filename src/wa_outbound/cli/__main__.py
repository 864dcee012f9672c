"""`python -m wa_outbound.cli`, as the `wa-outbound` script."""

from wa_outbound.cli.main import main

main()
