"""Framework integrations for :class:`aees.AEESOptimizer`, one module per framework.

Each module imports its framework when it is itself imported (``import aees`` and
``import aees.integrations`` never do), so the library stays torch-only:

- :mod:`aees.integrations.lightning`: ``AEESCallback`` for ``lightning.pytorch.Trainer``.
"""
