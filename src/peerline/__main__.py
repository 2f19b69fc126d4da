"""`python -m peerline` is the `peerline` command."""

from peerline.cli import main

raise SystemExit(main())
