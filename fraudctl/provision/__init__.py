"""Provisioning as plan -> apply: read-only planners per target, one executor."""
