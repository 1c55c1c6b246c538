"""The runner: what ``aees train`` runs, one training run of one task from its configuration to
its result file. Importing this package imports nothing (each module loads torch itself).

* :mod:`aees.runner.config`: the one :class:`~aees.runner.config.RunConfig` of a run, its options
  (field specs, the one flag model) and the checks of the machine it runs on.
* :mod:`aees.runner.tasks`: the task registry (one frozen record per task) and the tasks.
* :mod:`aees.runner.engine`: the training loop (build the run, loop over the epochs, finish);
  beside it :mod:`~aees.runner.passes` (training and evaluation passes), :mod:`~aees.runner.ddp`
  (``torchrun`` / DDP), :mod:`~aees.runner.controller` (the AEES wrapper of a run),
  :mod:`~aees.runner.summary` (assembling the result), :mod:`~aees.runner.record` (controller
  logs), :mod:`~aees.runner.flops` (FLOP accounting).
* :mod:`aees.runner.resume` / :mod:`aees.runner.checkpoint`: writing a checkpoint and whether a
  run may resume from it / reading one back (data only, checked).
* :mod:`aees.runner.optimizers`, :mod:`aees.runner.schedules`, :mod:`aees.runner.fast`: the base
  optimizer, the LR schedule, fast mode.
* :mod:`aees.runner.open_loop`: the open-loop attribution controls.
* :mod:`aees.runner.label_noise`, :mod:`aees.runner.cifar100_classes`: training-label corruption.
* :mod:`aees.runner.tracking`, :mod:`aees.runner.tracking_targets`: ``--tensorboard`` /
  ``--mlflow``.
* :mod:`aees.runner.library_demo`: ``aees demo``, the library on scikit-learn's digits.
"""
