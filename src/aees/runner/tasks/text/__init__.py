"""The text-classification tasks ``sst2``, ``agnews`` and ``text`` (docs/protocols.md §4.3-§4.7).

One implementation, one concern per module: :mod:`.task` (the checks and ``build``),
:mod:`.options` (the tasks' own options and defaults, read by their registry records),
:mod:`.data` (raw reading, columns, labels, seeded splits), :mod:`.cache` (the tokenized cache),
:mod:`.model` (model and tokenizer loading, the refusal of a checkpoint's own code), :mod:`.hub`
(offline rules, the reachability probe, the token), :mod:`.batches` (rows, padding, loss);
:mod:`.sst2`, :mod:`.agnews` and :mod:`.custom` (``text``) are configurations of :mod:`.task`.
Importing this package loads nothing else.
"""
