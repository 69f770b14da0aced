from rebirth.cli import entry

raise SystemExit(entry())
