"""The ``image`` task and its data, one concern per module: :mod:`.formats` (ImageFolder and
torchvision on-disk readers), :mod:`.cache` (the decoded uint8 tensor cache), :mod:`.pipeline`
(device-resident batches, augmentation, streaming), :mod:`.models` (building and checking the
model) and :mod:`.task` (the task). Importing this package imports nothing."""
