"""The ``qa`` command: models, index, docs (list, show, delete), search, ask, extract, serve, eval, train-reader.

Each group of commands is a module of its own (``qa.cli_serve``, ``qa.cli_index``, ``qa.cli_ask``,
``qa.cli_eval``; what they share is ``qa.cli_common``); they are put together here, in the order
``qa --help`` lists them.
"""

from __future__ import annotations

import typer

from qa.cli_ask import ask, extract, search
from qa.cli_eval import eval_cmd, train_reader
from qa.cli_index import docs_delete, docs_list, docs_show, index
from qa.cli_serve import models, serve

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="French semantic search and extractive question answering.")
app.command()(models)
app.command()(index)
app.command()(search)
docs_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The documents in the index: list, show, delete (add them with `qa index`).")
app.add_typer(docs_app, name="docs")
docs_app.command("list")(docs_list)
docs_app.command("show")(docs_show)
docs_app.command("delete")(docs_delete)
app.command()(ask)
app.command()(extract)
app.command()(serve)
app.command("eval")(eval_cmd)
app.command("train-reader")(train_reader)


if __name__ == "__main__":
    app()
