from aqi.cli import run

run()
