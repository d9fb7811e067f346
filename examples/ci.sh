#!/usr/bin/env bash
# Converge an ecosystem from CI: fail on drift in pull requests, apply on the main branch.
#   ECOCTL_DIR=path/to/ecosystem bash examples/ci.sh [check|apply]
set -euo pipefail
mode=${1:-check}
export ECOCTL_DIR=${ECOCTL_DIR:-.}

set +e
ecoctl plan --json --detailed-exitcode > plan.json
status=$?
set -e
case "$status" in
  0) echo "ecosystem matches ecosystem.yaml"; exit 0 ;;
  2) echo "changes pending:"; python3 -c 'import json,sys; [print(" ", c["text"]) for c in json.load(open("plan.json"))["changes"]]' ;;
  *) echo "plan failed (exit $status)"; exit "$status" ;;
esac

if [ "$mode" = apply ]; then
  ecoctl apply --yes --json > applied.json
  ecoctl plan --detailed-exitcode   # a converged ecosystem plans no changes
else
  exit 2
fi
