"""`python -m sesame` runs the command-line tool (the same as `sesame`)."""
from sesame.cli.main import main

raise SystemExit(main())
