"""The ``cifar100`` task and its data: :mod:`.data` reads the official pickles (data only),
:mod:`.task` is the task. Importing this package imports nothing."""
