"""Few-shot experiments: spec -> generators -> cells (seed x shots x n_generated x method) -> records -> tables.

  spec.py        ExperimentSpec, the classifier Recipe, the cells
  streams.py     named random streams (every draw of a cell derives from (seed, cell, purpose))
  generators.py  generator registry (typed configs, build-and-train functions), save / load
  methods.py     shots-only vs pool-using
  recipe.py      the classifier recipe: train, predict, score
  cells.py       data splits (train / validation / test), one cell -> one record
  runner.py      generator and cell tasks, run folders, resume, executor hook
  report.py      summaries, paired differences, Holm-corrected marks, tables
"""
from core.fewshot.cells import TIMING_KEYS, Splits, load_splits, run_cell
from core.fewshot.generators import GENERATORS, Stopped, register_generator, settings_table
from core.fewshot.methods import data_mark, generates, uses_pool
from core.fewshot.recipe import predict_proba, scores, train_classifier
from core.fewshot.report import METRICS, markdown_table, pivot, summarize
from core.fewshot.runner import list_runs, load_run, plan_generators, run_cell_task, run_experiment, train_generator_task
from core.fewshot.spec import ExperimentSpec, Recipe

__all__ = ["ExperimentSpec", "Recipe", "run_experiment", "run_cell", "run_cell_task", "train_generator_task",
           "plan_generators", "load_splits", "Splits", "train_classifier", "predict_proba", "scores", "summarize",
           "pivot", "markdown_table", "list_runs", "load_run", "METRICS", "TIMING_KEYS", "GENERATORS",
           "register_generator", "settings_table", "Stopped", "data_mark", "generates", "uses_pool"]
