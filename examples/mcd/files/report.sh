#!/bin/sh
# The nightly report: counts what the API served. ${HOME} stays as it is: this file is not a
# template (config files are substituted only with template: true).
echo "report for ${HOME:-/}"
