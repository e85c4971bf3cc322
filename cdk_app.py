#!/usr/bin/env python3
"""CDK entry point (``npx cdk synth``). Settings and their defaults: stacks/config.py."""

import aws_cdk as cdk

import stacks

app = cdk.App()
stacks.build(app)
app.synth()
