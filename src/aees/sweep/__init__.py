"""Run plans and their execution: :mod:`.plan` (presets -> manifests), :mod:`.manifest` (planned
runs, their commands and checks), :mod:`.local` and :mod:`.ray` (the executors, sharing
:mod:`.common`). Imports :mod:`aees.runner`, :mod:`aees.results` and :mod:`aees.console`.
"""
