"""Training with DEBA: sampler, micro-batching, memory cap, LR coupling, distributed reduction, the
step engine, checkpoints, history, callbacks and ``fit``.

Imports everything below it (``errors``, ``registry``, ``profiles``, ``signals``, ``control``),
never ``deba.app``.
"""
