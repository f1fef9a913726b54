#!/usr/bin/env bash
# Checks the manifests without a cluster: every document parses as YAML and
# has apiVersion, kind, metadata.name (and spec, except ConfigMap/Secret);
# if `kubernetes-validate` (PyPI) is installed, every file is validated
# against the Kubernetes schemas, strictly (unknown fields are errors);
# then the ConfigMap's serve.toml and plan are loaded by the real
# `cairn serve` (plugin paths pointed at this checkout's built components,
# the placeholder token hash swapped for a throwaway one), which exits 0
# after draining on SIGTERM if both load.
#   deploy/validate.sh            (needs python3 with PyYAML, target/release/cairn)
#   KUBERNETES_VALIDATE=/path/to/kubernetes-validate deploy/validate.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CAIRN_BIN:-$ROOT/target/release/cairn}
PLUGINS=${PLUGINS:-$ROOT/plugins/target/wasm32-wasip2/release}
WORK=$(mktemp -d /tmp/cairn-deploy-check.XXXXXX)
PID=
cleanup() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$ROOT/deploy" "$WORK" "$PLUGINS" <<'PY'
import glob, os, sys, yaml
deploy, work, plugins = sys.argv[1:]
config = None
for path in sorted(glob.glob(os.path.join(deploy, "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        for key in ("apiVersion", "kind", "metadata"):
            assert doc.get(key), f"{path}: no {key}"
        assert doc["metadata"].get("name"), f"{path}: no metadata.name"
        if doc["kind"] not in ("ConfigMap", "Secret"):
            assert doc.get("spec"), f"{path}: no spec"
        print(f"ok  {os.path.basename(path)}: {doc['apiVersion']} {doc['kind']} {doc['metadata']['name']}")
        if doc["kind"] == "ConfigMap":
            config = doc
os.makedirs(os.path.join(work, "plans"))
serve = config["data"]["serve.toml"].replace("0" * 64, "ab" * 32)
serve = serve.replace('"/var/lib/cairn"', '"state"')
open(os.path.join(work, "serve.toml"), "w").write(serve)
plan = config["data"]["plan-checks.toml"].replace("/opt/cairn/plugins", plugins)
open(os.path.join(work, "plans", "checks.toml"), "w").write(plan)
PY

KV=${KUBERNETES_VALIDATE:-$(command -v kubernetes-validate || true)}
if [[ -n $KV ]]; then
  (cd "$ROOT" && "$KV" --strict deploy/*.yaml)
else
  echo "--  no kubernetes-validate: schemas not checked (pip install kubernetes-validate)"
fi

"$BIN" serve --config "$WORK/serve.toml" --listen 127.0.0.1:0 2>"$WORK/log" &
PID=$!
for _ in $(seq 1 600); do
  grep -q 'serving on' "$WORK/log" && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q 'serving on' "$WORK/log"; then
  echo "the ConfigMap's serve.toml or plan did not load:" >&2
  cat "$WORK/log" >&2
  exit 1
fi
kill -TERM "$PID"
status=0
wait "$PID" || status=$?
PID=
echo "ok  configmap.yaml: serve.toml and plans/checks.toml load in cairn serve (exit $status after SIGTERM)"
