#!/usr/bin/env bash
# Prints the raw Beijing source to ingest: ../shared's copy, else $AQI_RAW, else a fresh UCI download.
set -euo pipefail
AQI=${1:-aqi}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -d "$here/../shared/data/beijing-multisite" ]; then
  echo "$here/../shared/data/beijing-multisite"
elif [ -n "${AQI_RAW:-}" ]; then
  echo "$AQI_RAW"
else
  dd=${AQI_DATA_DIR:-data}
  zip=$(ls "$dd"/raw/*.zip 2>/dev/null | head -n1 || true)
  if [ -z "$zip" ]; then
    "$AQI" download >&2
    zip=$(ls "$dd"/raw/*.zip | head -n1)
  fi
  echo "$zip"
fi
