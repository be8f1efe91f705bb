#!/usr/bin/env bash
# Back up the database: one pg_dump in custom format (compressed, restorable table by table),
# consistent while every process keeps running (pg_dump reads one snapshot).
#   deploy/backup.sh [OUT_DIR]      (DATABASE_URL from the environment, or /etc/nuanxin/nuanxin.env)
# Keep NUANXIN_ID_HASH_KEY apart from the dumps: without it a restored roll cannot be searched by ID card.
set -euo pipefail
out_dir=${1:-/var/backups/nuanxin}
if [[ -z "${DATABASE_URL:-}" && -r /etc/nuanxin/nuanxin.env ]]; then
    DATABASE_URL=$(sed -n 's/^DATABASE_URL=//p' /etc/nuanxin/nuanxin.env)
fi
: "${DATABASE_URL:?set DATABASE_URL}"
url=${DATABASE_URL/postgresql+psycopg:/postgresql:}
mkdir -p "$out_dir"
umask 077
file="$out_dir/nuanxin-$(date -u +%Y%m%dT%H%M%SZ).dump"
pg_dump --format=custom --no-owner --no-privileges --file="$file.partial" "$url"
mv "$file.partial" "$file"
# The dump is only a backup once it can be read back.
pg_restore --list "$file" >/dev/null
echo "$file"
