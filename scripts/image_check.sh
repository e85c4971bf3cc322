#!/usr/bin/env bash
# `make image-check`: build the Docker image for real (buildah) and run it (podman) the ways the
# README and AWS Batch do: the default command, a real-data run on a read-only Parquet dataset
# that must compile nothing, --user, an OpenShift-style uid, --read-only, an unwritable results
# volume, and every `docker run` line of the README exactly as written.
#
# Runs as root (as CI does): installs buildah, podman, mmdebstrap and runc with apt-get when
# missing. When python:3.11-slim cannot be pulled, the base is a stand-in built from Debian
# packages (scripts/image_base.sh). Container storage (the stand-in base, the last image) persists
# in $IMAGE_CHECK_STATE (default /var/lib/backtest-image) and pip's download cache in buildah's
# cache folder, so a second run on one machine rebuilds only when the build's inputs changed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
IMAGE=localhost/backtest:latest
PYTHON_SLIM=docker.io/library/python:3.11-slim
SAMPLES=$REPO/samples
REAL_CSV=BTCUSDT-15m-spot-2024-01-29_2025-03-21.csv.gz
APP_UID=10001

T0=$SECONDS
step() { printf '\n== [%4ds] %s\n' $((SECONDS - T0)) "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '\nimage-check: FAIL: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
    STATE=${IMAGE_CHECK_STATE:-/var/lib/backtest-image}
else
    STATE=${IMAGE_CHECK_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/backtest-image}
fi
mkdir -p "$STATE"
STORAGE=(--root "$STATE/storage" --runroot "$STATE/run" --storage-driver vfs)
BUILDAH=(buildah "${STORAGE[@]}")
PODMAN=(podman "${STORAGE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file)
# Containers get this host's limits: podman's rootful defaults (1M files, 4M processes) are above
# what a root without CAP_SYS_RESOURCE may set, and some kernels refuse nproc above pid_max.
nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo "$nproc")
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi
RUN=(run --network none --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")
export TMPDIR=${TMPDIR:-/var/tmp}  # buildah keeps its RUN --mount=type=cache folders there

# --- tools ------------------------------------------------------------------------------------
missing=()
for tool in buildah podman mmdebstrap runc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        fail "missing ${missing[*]}; install them (Debian: apt-get install buildah podman mmdebstrap runc)"
    fi
    step "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends buildah podman mmdebstrap runc containernetworking-plugins \
        ca-certificates >/dev/null
fi

# --- base image -------------------------------------------------------------------------------
step "base image"
if [ -n "${IMAGE_BASE:-}" ]; then
    BASE=$IMAGE_BASE
elif timeout 180 "${BUILDAH[@]}" pull -q "$PYTHON_SLIM" >/dev/null 2>"$STATE/pull.log"; then
    BASE=$PYTHON_SLIM
else
    echo "   $PYTHON_SLIM cannot be pulled ($(tail -c 160 "$STATE/pull.log" | tr '\n' ' '))"
    BASE=localhost/backtest-base:py3.11-bookworm-$(scripts/image_base.sh --recipe-hash | cut -c1-12)
    if "${PODMAN[@]}" image exists "$BASE"; then
        echo "   reusing the stand-in $BASE"
    else
        echo "   building the stand-in $BASE from Debian packages (mmdebstrap)"
        b0=$SECONDS
        if ! scripts/image_base.sh "$STATE/base.tar" >"$STATE/base.log" 2>&1; then
            tail -40 "$STATE/base.log"
            fail "the stand-in base did not build (full log: $STATE/base.log)"
        fi
        "${PODMAN[@]}" import -q \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["python3"]' \
            "$STATE/base.tar" "$BASE" >/dev/null
        rm -f "$STATE/base.tar"
        echo "   stand-in built in $((SECONDS - b0)) s"
    fi
fi
ok "base: $BASE"

# --- build ------------------------------------------------------------------------------------
# The image is labelled with a digest of everything the build reads: the base image, the
# Dockerfile, .dockerignore and the files it lets into the context. An image with the same digest
# is up to date and is not rebuilt. No --layers: with vfs storage every cached layer is a full
# copy of the file system (about 1 GB here), which costs more than it saves; pip's download
# cache (RUN --mount=type=cache) makes a rebuild after a code change cheap instead.
context_digest() {
    {
        "${PODMAN[@]}" image inspect --format '{{.Id}}' "$BASE"
        sha256sum Dockerfile .dockerignore
        # .dockerignore lets in only the paths it re-includes with "!"
        mapfile -t roots < <(sed -n 's/^!\(.*\)$/\1/p' .dockerignore)
        find "${roots[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 \
            | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
}
"${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true  # working containers an interrupted build left behind
DIGEST=$(context_digest)
step "build (context digest $DIGEST)"
current=$("${PODMAN[@]}" image inspect --format '{{index .Labels "org.backtest.context-digest"}}' "$IMAGE" \
    2>/dev/null || true)
if [ "$current" = "$DIGEST" ] && [ -z "${IMAGE_CHECK_REBUILD:-}" ]; then
    BUILD_S=0
    ok "$IMAGE is up to date (same digest); set IMAGE_CHECK_REBUILD=1 to rebuild anyway"
else
    previous=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    b0=$SECONDS
    if ! "${BUILDAH[@]}" bud --isolation chroot --build-arg BASE="$BASE" \
            --label org.backtest.context-digest="$DIGEST" -f Dockerfile -t "$IMAGE" . >"$STATE/build.log" 2>&1; then
        tail -60 "$STATE/build.log"
        fail "the image did not build (full log: $STATE/build.log)"
    fi
    BUILD_S=$((SECONDS - b0))
    # with vfs every image is a full copy: drop the one this build replaced
    [ -z "$previous" ] || "${PODMAN[@]}" rmi -f "$previous" >/dev/null 2>&1 || true
    "${PODMAN[@]}" image prune -f >/dev/null 2>&1 || true
    ok "built in ${BUILD_S} s"
fi
SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
ok "image size $((SIZE / 1000000)) MB"

# --- runs -------------------------------------------------------------------------------------
WORK=$(mktemp -d "$STATE/check.XXXXXX")
chmod 755 "$WORK"
cleanup() {
    "${PODMAN[@]}" rm -f -i bt-check-default bt-check-data >/dev/null 2>&1 || true
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

run() {  # run NAME ARGS...: podman run, output in $WORK/NAME.out and .err, exit code in $RC
    local name=$1
    shift
    set +e
    "${PODMAN[@]}" "${RUN[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    RC=$?
    set -e
}
results_dir() {  # results_dir NAME OWNER: an empty results folder owned by OWNER (uid:gid)
    mkdir -p "$WORK/$1"
    chown "$2" "$WORK/$1"
    chmod 775 "$WORK/$1"
    echo "$WORK/$1"
}
expect_sweep() {  # expect_sweep NAME RESULTS_DIR: exit 0, one run folder with 64 rows, nothing compiled
    local name=$1 dir=$2 summary
    [ "$RC" = 0 ] || { cat "$WORK/$name.err"; fail "$name: exit $RC"; }
    summary=$(find "$dir" -name summary.csv | head -1)
    [ -n "$summary" ] || fail "$name: no summary.csv under $dir"
    [ "$(wc -l <"$summary")" = 65 ] || fail "$name: summary.csv has $(wc -l <"$summary") lines, not 65"
    if grep -q "\[cache\] data saved" "$WORK/$name.out"; then
        fail "$name: numba compiled: $(grep -m3 'data saved' "$WORK/$name.out")"
    fi
    grep -q "\[cache\] data loaded" "$WORK/$name.out" || fail "$name: no kernel came from the cache"
}
loaded_from() {  # where numba loaded its kernels from
    grep -o "data loaded from '[^']*" "$WORK/$1.out" | head -1 | cut -d"'" -f2
}
expect_loaded_from() {  # expect_loaded_from NAME FOLDER: the kernels came from the cache in FOLDER
    case "$(loaded_from "$1")" in "$2"/*) ;; *) fail "$1: kernels loaded from $(loaded_from "$1"), not $2" ;; esac
}
DEBUG=(-e NUMBA_DEBUG_CACHE=1)

step "image contents"
listing=$("${PODMAN[@]}" "${RUN[@]}" --rm --entrypoint ls "$IMAGE" -A /app | tr '\n' ' ')
for unwanted in README.md Makefile cdk.json cdk_app.py .ci .git tests bench docs stacks lambdas scripts Dockerfile; do
    case " $listing " in *" $unwanted "*) fail "/app holds $unwanted: the build context is not filtered" ;; esac
done
ok "/app: $listing"

step "default command (uid $APP_UID)"
out=$(results_dir default "$APP_UID:0")
run default --name bt-check-default "${DEBUG[@]}" -v "$out:/app/results" "$IMAGE"
expect_sweep default "$out"
changed=$("${PODMAN[@]}" diff bt-check-default | grep /opt/backtest/cache || true)
[ -z "$changed" ] || fail "default: the container changed its caches: $changed"
ok "64 combinations; kernels loaded from $(loaded_from default); caches unchanged (podman diff)"

step "real data: Parquet dataset built by the image, mounted read-only"
data=$(results_dir data "$APP_UID:0")
run build --rm -v "$SAMPLES:/in:ro" -v "$data:/out" "$IMAGE" \
    data build --input "/in/$REAL_CSV" --symbol BTCUSDT --interval 15m --out /out
[ "$RC" = 0 ] || { cat "$WORK/build.err"; fail "data build: exit $RC"; }
chmod -R a-w "$data"
out=$(results_dir data-run "$APP_UID:0")
run data --name bt-check-data "${DEBUG[@]}" -v "$data:/app/data:ro" -v "$out:/app/results" "$IMAGE" \
    run --data /app/data --out /app/results
expect_sweep data "$out"
grep -q "40,000 candles" "$WORK/data.err" || fail "data: not the 40,000 real candles: $(head -3 "$WORK/data.err")"
changed=$("${PODMAN[@]}" diff bt-check-data | grep /opt/backtest/cache || true)
[ -z "$changed" ] || fail "data: the real-data run compiled: $changed"
ok "40,000 real candles from a read-only Parquet dataset: nothing compiled (numba log, podman diff)"
DATA_RUN=(-v "$data:/app/data:ro")
DATA_ARGS=(run --data /app/data)

step "--user 1000:1000 (not in group 0: a private copy of the caches)"
out=$(results_dir user 1000:1000)
run user --rm --user 1000:1000 "${DEBUG[@]}" "${DATA_RUN[@]}" -v "$out:/app/results" "$IMAGE" "${DATA_ARGS[@]}"
expect_sweep user "$out"
expect_loaded_from user /tmp/backtest-1000/numba
! grep -qi "matplotlib created a temporary" "$WORK/user.err" || fail "user: matplotlib had no writable cache"
ok "nothing compiled; kernels from $(loaded_from user)"

step "OpenShift-style arbitrary uid 1000660000, group 0 (the group-writable caches)"
out=$(results_dir openshift 0:0)
chmod 2775 "$out"
run openshift --rm --user 1000660000:0 "${DEBUG[@]}" "${DATA_RUN[@]}" -v "$out:/app/results" "$IMAGE" "${DATA_ARGS[@]}"
expect_sweep openshift "$out"
expect_loaded_from openshift /opt/backtest/cache/numba
ok "nothing compiled; kernels from $(loaded_from openshift)"

step "--read-only with a tmpfs"
out=$(results_dir readonly "$APP_UID:0")
run readonly --rm --read-only --tmpfs /tmp "${DEBUG[@]}" "${DATA_RUN[@]}" -v "$out:/app/results" "$IMAGE" \
    "${DATA_ARGS[@]}"
expect_sweep readonly "$out"
expect_loaded_from readonly /tmp/backtest-$APP_UID/numba
ok "nothing compiled; kernels from $(loaded_from readonly)"
run readonly-out --rm --read-only --tmpfs /tmp "$IMAGE" run --out /app/elsewhere
if [ "$RC" != 2 ] || [ "$(wc -l <"$WORK/readonly-out.err")" != 1 ] \
        || ! grep -q "read-only file system" "$WORK/readonly-out.err"; then
    cat "$WORK/readonly-out.err"
    fail "--out on the read-only root: exit $RC"
fi
ok "--out on the read-only root: exit 2, $(cat "$WORK/readonly-out.err")"

step "a results volume the container cannot write"
out=$(results_dir unwritable 0:0)
chmod 755 "$out"
run unwritable --rm -v "$out:/app/results" "$IMAGE"
[ "$RC" = 2 ] || { cat "$WORK/unwritable.err"; fail "unwritable volume: exit $RC, not 2"; }
[ "$(wc -l <"$WORK/unwritable.err")" = 1 ] || { cat "$WORK/unwritable.err"; fail "unwritable volume: not one line"; }
grep -q -- "--user" "$WORK/unwritable.err" || fail "unwritable volume: the message names no fix"
[ -z "$(ls -A "$out")" ] || fail "unwritable volume: something was written"
ok "exit 2 before the sweep: $(cat "$WORK/unwritable.err")"

step "the README's docker run lines, exactly as written"
readme=$WORK/readme
mkdir -p "$readme"
if [ ${#DATA_RUN[@]} -gt 0 ]; then cp -a "$data" "$readme/data"; fi
# `docker` is podman here; every `docker run` line of the README's Docker section, continuation lines joined
docker() {
    if [ "$1" = run ]; then shift; "${PODMAN[@]}" "${RUN[@]}" "$@"; else "${PODMAN[@]}" "$@"; fi
}
mapfile -t lines < <(awk '/^## Docker/ { on = 1; next } /^## / { on = 0 } on' README.md \
    | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | grep -E '^(mkdir|docker run) ' || true)
[ ${#lines[@]} -ge 3 ] || fail "README: expected the Docker section's docker run lines, found ${#lines[@]}"
n=0
for line in "${lines[@]}"; do
    case "$line" in *"/app/data"*) [ -d "$readme/data" ] || { echo "   skip (no dataset): $line"; continue; } ;; esac
    before=$(find "$readme" -name summary.csv 2>/dev/null | wc -l)
    if ! (cd "$readme" && eval "$line") >"$WORK/readme.out" 2>"$WORK/readme.err"; then
        cat "$WORK/readme.err"
        fail "README: $line"
    fi
    case "$line" in
        "docker run"*)
            [ "$(find "$readme" -name summary.csv | wc -l)" -gt "$before" ] || fail "README: no results from: $line"
            n=$((n + 1))
            ;;
    esac
    ok "$line"
done

step "summary"
echo "   base:        $BASE"
echo "   build:       ${BUILD_S} s (0: the image was up to date)"
echo "   image size:  $((SIZE / 1000000)) MB"
echo "   runs:        default, real data (read-only Parquet), --user, arbitrary uid, --read-only,"
echo "                unwritable volume, $n README lines"
echo "   total:       $((SECONDS - T0)) s"
echo "image-check: OK"
