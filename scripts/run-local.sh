#!/usr/bin/env bash
# `make run`: the whole bot on this machine with the embedded defaults.
#
#   query service  in-process cache (or REDIS_URL), on 127.0.0.1:${QUERY_PORT:-8081}
#   bot service    long polling, SQLite chat state (or STATE_BACKEND/...), health on 127.0.0.1:${BOT_PORT:-8080}
#   watcher        checks of watched servers and their alerts, same state, health on 127.0.0.1:${WATCHER_PORT:-8082}
#
# Needs TELEGRAM_BOT_TOKEN (from @BotFather). Installs uv and the Python workspace first if missing.
# Ctrl-C (SIGINT) or SIGTERM stops every service and waits for them. Every variable of SPEC.md is passed through:
#   REDIS_URL=redis://127.0.0.1:6379/0            shared cache instead of the in-process one
#   STATE_BACKEND=dynamodb DYNAMODB_TABLE=... AWS_REGION=... [AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000]
#   ALLOW_PRIVATE_ADDRESSES=true                  also answer for servers on your own LAN (refused by default)
#   QUERY_PORT / BOT_PORT / WATCHER_PORT / HOST   where the services listen (127.0.0.1, 8081, 8080, 8082)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ]; then bold=$'\033[1m' red=$'\033[1;31m' plain=$'\033[0m'; else bold="" red="" plain=""; fi
say() { printf '%smcstatbot:%s %s\n' "$bold" "$plain" "$*"; }
fail() { printf '%smcstatbot:%s %s\n' "$red" "$plain" "$*" >&2; exit "${2:-1}"; }

# --- what it needs: uv and the workspace --------------------------------------------------------
if ! command -v uv >/dev/null 2>&1; then
  export PATH="$HOME/.local/bin:$PATH"
  if ! command -v uv >/dev/null 2>&1; then
    say "installing uv (python3 -m pip install --user uv)"
    # Debian/Ubuntu's own python3 refuses plain pip installs (PEP 668); uv is a single binary, so a user
    # install next to the system packages is safe. Inside a virtualenv, --user is refused: install there.
    python3 -m pip install --quiet --user uv 2>/dev/null \
      || python3 -m pip install --quiet --user --break-system-packages uv 2>/dev/null \
      || python3 -m pip install --quiet uv 2>/dev/null \
      || fail "could not install uv with pip; install it (https://docs.astral.sh/uv/) and run make run again"
  fi
fi
[ -d .venv ] || say "setting up the Python environment (uv sync --all-packages; a minute the first time)"
uv sync --all-packages --frozen --quiet 2>/dev/null || uv sync --all-packages --quiet \
  || fail "uv sync --all-packages failed (see above)"
PY=$(uv run --no-sync python -c 'import sys; print(sys.executable)')

# --- the token -------------------------------------------------------------------------------------
if [ -z "${TELEGRAM_BOT_TOKEN:-}" ]; then
  cat >&2 <<'EOF'
mcstatbot: TELEGRAM_BOT_TOKEN is not set, so the bot cannot start.

  Get a token from @BotFather in Telegram, then:
      TELEGRAM_BOT_TOKEN=123456:ABC... make run

  To check a Minecraft server from the terminal without Telegram:
      uv run mcstatbot status HOST[:PORT]              (add --edition bedrock, or --json)
EOF
  exit 2
fi

# --- does Telegram know the token? (one line and a non-zero exit when not, before anything starts) ---
bot_name=$("$PY" -m mcstatbot_bot check-telegram) || exit $?

# --- configuration: the embedded defaults, each one overridable from the environment ---------------
BIND=${HOST:-127.0.0.1}
QUERY_PORT=${QUERY_PORT:-8081}
BOT_PORT=${BOT_PORT:-8080}
WATCHER_PORT=${WATCHER_PORT:-8082}
# The bot always talks to the query service this script starts.
QUERY_URL="http://127.0.0.1:${QUERY_PORT}"
export LOG_FORMAT=${LOG_FORMAT:-text}
export BOT_MODE=${BOT_MODE:-polling}
export STATE_BACKEND=${STATE_BACKEND:-sqlite}
if [ "$STATE_BACKEND" = sqlite ]; then
  export SQLITE_PATH=${SQLITE_PATH:-./mcstatbot.db}
fi
# ALLOW_PRIVATE_ADDRESSES keeps the service's own default (false) unless it is set here.

for port in "$QUERY_PORT" "$BOT_PORT" "$WATCHER_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is already in use on 127.0.0.1 (another make run?); set QUERY_PORT / BOT_PORT / WATCHER_PORT to others"
  fi
done

# --- the two services --------------------------------------------------------------------------------
query_pid=""
bot_pid=""
watcher_pid=""
stopping=0
stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  say "stopping"
  for pid in $watcher_pid $bot_pid $query_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $watcher_pid $bot_pid $query_pid; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  say "stopped"
}
trap 'stop_all; exit 0' INT  # Ctrl-C is how a developer stops it: a clean stop, not an error
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# Waits until GET url/ready answers 200 while pid is alive (scripts/wait_for_ready.py); fails after 60 s.
# A service that exits during start-up has said why itself: this exits with its status, adding nothing.
wait_ready() {
  "$PY" scripts/wait_for_ready.py "$1" "$2" "$3" 60 2>/dev/null && return 0
  if ! kill -0 "$2" 2>/dev/null; then
    local status=0
    wait "$2" || status=$?
    exit $(( status == 0 ? 1 : status ))
  fi
  fail "$1 not ready after 60 s (its output is above)"
}

cache="in-process cache"
[ -n "${REDIS_URL:-}" ] && cache="Redis cache"
say "starting the query service ($cache)"
HOST=$BIND PORT=$QUERY_PORT "$PY" -m mcstatbot_query > >(sed -u 's/^/[query] /') 2>&1 &
query_pid=$!
wait_ready "the query service" "$query_pid" "$QUERY_URL"

if [ "$STATE_BACKEND" = dynamodb ] && [ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
  # A local DynamoDB (DynamoDB Local, LocalStack) starts empty: create the table when it is missing.
  say "creating the DynamoDB table ${DYNAMODB_TABLE:-user_sessions} at $AWS_ENDPOINT_URL_DYNAMODB if missing"
  "$PY" -m mcstatbot_bot create-table 2>&1 | sed -u 's/^/[bot] /' || fail "could not create the DynamoDB table"
fi

say "starting the bot ($BOT_MODE, $STATE_BACKEND state)"
HOST=$BIND PORT=$BOT_PORT QUERY_SERVICE_URL=$QUERY_URL "$PY" -m mcstatbot_bot \
  > >(sed -u 's/^/[bot]   /') 2>&1 &
bot_pid=$!
wait_ready "the bot" "$bot_pid" "http://127.0.0.1:${BOT_PORT}"

# With STATE_BACKEND=memory the watcher cannot see the bot's watches (each process has its own memory).
say "starting the watcher ($STATE_BACKEND state)"
HOST=$BIND PORT=$WATCHER_PORT QUERY_SERVICE_URL=$QUERY_URL "$PY" -m mcstatbot_watcher \
  > >(sed -u 's/^/[watch] /') 2>&1 &
watcher_pid=$!
wait_ready "the watcher" "$watcher_pid" "http://127.0.0.1:${WATCHER_PORT}"

cat <<EOF

  mcstatbot is running.
    query service  http://${BIND}:${QUERY_PORT}   (pid $query_pid; try ${QUERY_URL}/api/v1/status/HOST)
    bot            http://${BIND}:${BOT_PORT}   (pid $bot_pid; $BOT_MODE, $STATE_BACKEND state) - send /start to ${bot_name}
    watcher        http://${BIND}:${WATCHER_PORT}   (pid $watcher_pid; /watch and /live in a chat)
  Press Ctrl-C to stop them all.

EOF

# Stop everything as soon as either service exits on its own.
set +e
wait -n "$query_pid" "$bot_pid" "$watcher_pid"
status=$?
set -e
if [ "$stopping" = 0 ]; then
  say "a service exited on its own (status $status); stopping the others"
  exit 1
fi
