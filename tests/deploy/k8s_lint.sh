#!/bin/sh
# Lint and render the deployment manifests with the real tools.
#   tests/deploy/k8s_lint.sh yamllint    yamllint --strict over deploy/
#   tests/deploy/k8s_lint.sh kustomize   render every kustomization under deploy/
# Exit 77 (ctest: skipped) when the tool is not installed; CI machines may
# have neither kubectl nor kustomize.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2

case "${1:-}" in
  yamllint)
    if ! command -v yamllint >/dev/null 2>&1; then
      echo "SKIPPED: yamllint not installed (Debian: yamllint)"
      exit 77
    fi
    yamllint --version
    # Strict: warnings fail too. The config is the repository's.
    yamllint --strict -c .yamllint.yaml deploy/ .yamllint.yaml || exit 1
    echo "yamllint: deploy/ is clean"
    ;;
  kustomize)
    if command -v kubectl >/dev/null 2>&1; then
      render="kubectl kustomize"
    elif command -v kustomize >/dev/null 2>&1; then
      render="kustomize build"
    else
      echo "SKIPPED: neither kubectl nor kustomize on PATH"
      exit 77
    fi
    status=0
    err=$(mktemp)
    trap 'rm -f "$err"' EXIT
    for k in $(find deploy -name kustomization.yaml | sort); do
      dir=$(dirname "$k")
      if ! out=$($render "$dir" 2>"$err"); then
        echo "FAIL: $render $dir"
        cat "$err"
        status=1
        continue
      fi
      # Deprecated fields (commonLabels, patchesStrategicMerge, ...) only
      # print a warning; treat any message as a failure so they get fixed.
      if [ -s "$err" ]; then
        echo "FAIL: $render $dir printed:"
        cat "$err"
        status=1
        continue
      fi
      n=$(printf '%s\n' "$out" | grep -c '^kind:')
      echo "ok: $render $dir ($n objects)"
    done
    exit $status
    ;;
  *)
    echo "usage: $0 yamllint|kustomize" >&2
    exit 2
    ;;
esac
