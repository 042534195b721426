#!/bin/sh
# The chat example's container command (Dockerfile, compose.yaml): create or migrate the
# SQLite database, then serve on $HOST:$PORT with the health endpoints. Arguments go on to
# `switchboard serve` (compose.yaml adds --workers). tests/test_container_recipe.py runs it.
set -e
python manage.py migrate --noinput -v0
exec switchboard serve chatsite.asgi:application \
    --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
    --health-path /healthz --ready-path /readyz \
    "$@"
