"""The ``qa`` command: models, index, docs (list, show, delete), backup, search, ask, extract, serve, eval, train-reader.

Each group of commands is a module of its own (``qa.cli_serve``, ``qa.cli_index``, ``qa.cli_ask``,
``qa.cli_eval``; what they share is ``qa.cli_common``); they are put together here, in the order
``qa --help`` lists them, each with what a Ctrl-C leaves (``interruptible``).
"""

from __future__ import annotations

import functools
from typing import Callable, Union

import typer

from qa.cli_ask import ask, extract, search
from qa.cli_common import interrupted
from qa.cli_eval import eval_cmd, eval_interrupted, train_interrupted, train_reader
from qa.cli_index import backup, backup_interrupted, docs_delete, docs_list, docs_show, index
from qa.cli_serve import models, serve

# what an interruption leaves: a fixed text, or one made from the command's own arguments
State = Union[str, Callable[..., str]]

UNCHANGED = "nothing was changed"


def interruptible(command: Callable[..., None], state: State) -> Callable[..., None]:
    """``command``, ending on Ctrl-C (SIGINT) with one line on stderr, "interrupted: <state>", and
    exit status 130 (128 + SIGINT, as a shell reports a command a Ctrl-C ended); 143 for a SIGTERM
    that the command turned into an interruption (``qa.cli_common.terminable``). Typer alone exits
    130 saying nothing, which leaves the user to guess whether a report, an index or a checkpoint
    was written. A command that knows more where it stops (`qa index` in its writes) says it itself."""

    @functools.wraps(command)  # typer reads the options from the signature this keeps
    def run(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            interrupted(state if isinstance(state, str) else state(**kwargs), exc)

    return run


app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="French semantic search and extractive question answering.")
# a build writes into a temporary folder renamed when whole, which an interruption removes
app.command()(interruptible(models, "no model is left half-built: run the same command again to finish"))
app.command()(interruptible(index, "every write done is kept whole (the index is crash-safe): run the same command again to finish"))
app.command()(interruptible(search, UNCHANGED))
docs_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The documents in the index: list, show, delete (add them with `qa index`).")
app.add_typer(docs_app, name="docs")
docs_app.command("list")(interruptible(docs_list, UNCHANGED))
docs_app.command("show")(interruptible(docs_show, UNCHANGED))
docs_app.command("delete")(interruptible(docs_delete, "the delete is one atomic write: the document is either gone or whole (`qa docs show` tells)"))
app.command()(interruptible(backup, backup_interrupted))
app.command()(interruptible(ask, UNCHANGED))
app.command()(interruptible(extract, UNCHANGED))
# a Ctrl-C once it serves is its normal stop (status 0, qa.cli_serve): this is one during its checks
app.command()(interruptible(serve, "the server is not running"))
app.command("eval")(interruptible(eval_cmd, eval_interrupted))
app.command("train-reader")(interruptible(train_reader, train_interrupted))


if __name__ == "__main__":
    app()
