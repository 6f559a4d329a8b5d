"""Recommenders that ``hmrec evaluate`` scores, one module per family.

Each module defines ``build_methods(ctx: EvalContext) -> dict[str, Callable]`` (see
``pipeline/evaluation.py``): it returns ``{}`` when its artifacts are missing and raises
``LeakageError`` (via ``check_model_cutoff``) when its model trained on the scored week.
"""

# Every family ``hmrec evaluate`` scores, named once (a new family is added here).
METHOD_MODULES = (
    "pipeline.methods.baselines",
    "pipeline.methods.candidate",
    "pipeline.methods.ranker",
)
