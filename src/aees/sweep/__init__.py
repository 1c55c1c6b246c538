"""Run plans and their execution, one concern per module:

* :mod:`.plan`: presets (TOML) expanded into a manifest; :mod:`.manifest`: the planned runs, their
  commands and the checks of a manifest read back; :mod:`.flags`: the ``aees train`` flags a plan
  may set (kinds, write flags, identity, the command line); :mod:`.paths`: where a run may write;
  :mod:`.result_check`: whether a result file is a planned run's; :mod:`.errors`.
* :mod:`.local` and :mod:`.ray`: the executors, sharing :mod:`.bookkeeping` (one sweep's
  statuses, locks, signals and summary), :mod:`.attempt` (one attempt of one run),
  :mod:`.processes` (POSIX process control), :mod:`.gpus` (GPU checks, slots, MPS) and
  :mod:`.progress` (the live line and the summary).

Imports :mod:`aees.runner`, :mod:`aees.results` and :mod:`aees.console`.
"""
