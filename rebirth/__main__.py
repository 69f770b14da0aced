from rebirth.cli import main

raise SystemExit(main())
