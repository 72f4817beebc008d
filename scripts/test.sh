#!/usr/bin/env bash
# The whole test suite: type checks, then every vitest suite against real
# servers, which this script starts on loopback ports and stops afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

pnpm run typecheck

results=$(mktemp -d)/vitest.json
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?
node scripts/test-summary.mjs "$results" || status=$?
exit "$status"
