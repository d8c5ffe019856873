#!/usr/bin/env bash
# Builds the Python example's two images with the `capsule` on PATH (or $CAPSULE):
#   python:3.15   CPython for WASI laid out as Docker's python image: python, python3,
#                 python3.15 (a bootstrap over the reactor), pip; see README.md
#                 (context staged by fetch.sh)
#   python-app    examples/python/app, FROM python:3.15
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
capsule=${CAPSULE:-capsule}
context=$("$here/fetch.sh")
"$capsule" build -t python:3.15 "$context"
"$capsule" build -t python-app "$here/app"
