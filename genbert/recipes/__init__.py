"""The task layer: typed recipes over one training path (scripts -> recipes -> model/data/generation).

- :mod:`.common`: recipes as flags, usage errors, run directories, building a model from --init;
- :mod:`.seq2seq`: fine-tuning for summarization and translation (every way of generating);
- :mod:`.pretrain`: pretraining and held-out MLM evaluation;
- :mod:`.compare`: every way on one budget, as named recipe overrides;
- :mod:`.benchmark`: scoring a model or a file of predictions.
"""
