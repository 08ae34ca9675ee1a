"""Studies around the search: ``tune`` (a program's knobs with Optuna) and ``meta_train``
(an LPO drift network with an evolution strategy). Both store their results as programs of
the lineage, through the engine's evaluation path."""
