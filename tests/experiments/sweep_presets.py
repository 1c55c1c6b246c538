"""A tiny run-plan preset shared by the plan and sweep tests: 2 methods x 2 seeds on digits."""

TINY = """
description = "two methods on digits, one epoch"
seeds = [0, 1]

[base]
task = "digits"
device = "cpu"
epochs = 1

[axes.method]
adamw = { control_mode = "baseline" }
aees = { control_mode = "adaptive", lr_candidates = [0.5, 1.0, 2.0] }
"""
