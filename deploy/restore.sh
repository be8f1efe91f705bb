#!/usr/bin/env bash
# Restore a dump made by backup.sh into an EMPTY database (create it first: createdb -O nuanxin nuanxin),
# then bring its schema up to this code's and check it. Stop every nuanxin process first.
#   DATABASE_URL=postgresql://... deploy/restore.sh FILE.dump
set -euo pipefail
file=${1:?usage: restore.sh FILE.dump}
: "${DATABASE_URL:?set DATABASE_URL to the empty database to restore into}"
url=${DATABASE_URL/postgresql+psycopg:/postgresql:}
pg_restore --exit-on-error --no-owner --no-privileges --single-transaction --dbname="$url" "$file"
# A dump from an older release: its migrations run now, as on an upgrade.
nuanxin=${NUANXIN_BIN:-nuanxin}
"$nuanxin" migrate
echo "restored $file"
