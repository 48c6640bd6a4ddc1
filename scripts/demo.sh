#!/usr/bin/env bash
# The main job end to end on the real data: ingest → train one station → forecast → evaluate.
set -euo pipefail
AQI=${AQI:-aqi}
STATION=${STATION:-Aotizhongxin}
src=$(bash "$(dirname "$0")/raw_source.sh" "$AQI")
echo "== ingest $src"
"$AQI" ingest "$src"
"$AQI" stations
for cmd in train forecast evaluate; do
  if "$AQI" "$cmd" --help >/dev/null 2>&1; then
    echo "== $cmd $STATION"
    "$AQI" "$cmd" --station "$STATION"
  fi
done
