"""``python -m rdm_core ...`` (and ``torchrun ... -m rdm_core train RECIPE``)."""

from rdm_core.cli.main import main

raise SystemExit(main())
