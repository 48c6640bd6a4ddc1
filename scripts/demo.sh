#!/usr/bin/env bash
# The main job end to end on the real data: ingest → train one station → forecast → evaluate.
set -euo pipefail
AQI=${AQI:-aqi}
STATION=${STATION:-Aotizhongxin}
src=$(bash "$(dirname "$0")/raw_source.sh" "$AQI")
echo "== aqi ingest $src"
"$AQI" ingest "$src"
"$AQI" stations
echo "== aqi train --station $STATION"
"$AQI" train --station "$STATION"
echo "== aqi forecast --station $STATION"
"$AQI" forecast --station "$STATION"
echo "== aqi evaluate --station $STATION"
"$AQI" evaluate --station "$STATION"
