#!/usr/bin/env python3
"""CDK entry point (``npx cdk synth``). Settings and their defaults: stacks/config.py."""

import os
import sys

import aws_cdk as cdk

import stacks

app = cdk.App()
try:
    stacks.build(app, os.environ, stacks.profile_region())
except stacks.SettingsError as exc:  # a bad context value or a US region: one line, no traceback
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
app.synth()
