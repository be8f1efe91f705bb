#!/usr/bin/env bash
# Regenerate the initial migration from the models (only while no database in the field
# depends on it; after the first release, add new revisions with `alembic revision --autogenerate`).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
rm -f models/migrations/versions/0001_*.py
.venv/bin/python - "$tmp" <<'PY'
import sys
from alembic import command
from models.migrate import alembic_config
cfg = alembic_config(f"sqlite:///{sys.argv[1]}/empty.db")
command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
PY
mv models/migrations/versions/0001_initial_schema.py models/migrations/versions/0001_initial_schema.py 2>/dev/null || true
rm -rf "$tmp"
