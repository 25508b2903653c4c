"""`python -m archiver` is the same as the `rc-archiver` command."""

from archiver.cli import main

raise SystemExit(main())
