"""sama.train: the training engine (``engine.Trainer``), YAML configs (``config``), the warm-up + cosine schedule
(``schedule``), atomic resumable checkpoints (``checkpointing``), DDP / FSDP2 / DeepSpeed plumbing (``distributed``),
logs and plots (``tracking``) and the ``sama train`` command (``cli``).

Typical use::

    from sama.train.config import load_config
    from sama.train.engine import Trainer
    result = Trainer(load_config("configs/sama-tiny-synthetic.yaml", ["max_steps=4"]), resume=True).fit()
"""
