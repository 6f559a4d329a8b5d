"""``hmrec``: the one command-line entry point that composes the offline steps.

Every group and command of ``hmrec`` is named below, once. A command is a module-level
function in ``pipeline/commands/<module>.py``; a group with an action or help of its own
(``evaluate``, ``index``, ``events``) is defined beside its commands, a group that only
gathers commands (``data``, ``train``, ``explain``, ``search``) here.
"""

from __future__ import annotations

import click

from shared.config import configure_tensorflow

configure_tensorflow()  # TensorFlow's Keras, checked before any command module can import TF

from pipeline.commands import candidate, data_check, data_synth, evaluate, events, ranker, report, run, search  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """H&M two-stage recommender: data, training, inference, search, evaluation."""


data_group = click.Group("data", help="Data: synthesise, check, describe.")
train_group = click.Group("train", help="Train models.")
explain_group = click.Group("explain", help="Explain trained models.")
search_group = click.Group("search", help="Query the search indexes from the command line.")


def _group(group: click.Group, *commands: click.Command) -> click.Group:
    for command in commands:
        group.add_command(command)
    return group


cli.add_command(_group(data_group, data_synth.synth_command, data_synth.stats_command, data_check.check_command))
cli.add_command(_group(train_group, candidate.train_candidate_command, ranker.train_ranker_command))
cli.add_command(candidate.infer_command)
cli.add_command(ranker.rerank_command)
cli.add_command(_group(explain_group, ranker.explain_ranker_command))
cli.add_command(_group(search.index_group, search.index_text_command, search.index_images_command))
cli.add_command(_group(search_group, search.search_text_command, search.search_image_command))
cli.add_command(_group(evaluate.evaluate_group, search.evaluate_search_command))
cli.add_command(_group(events.events_group, events.drain_command))
cli.add_command(report.report_command)
cli.add_command(run.run_command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
