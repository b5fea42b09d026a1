"""Logging set-up shared by `qa` and the API app (in a process of its own, e.g. a worker of
`qa serve --workers N`): our loggers at QA_LOG_LEVEL, third-party ones only warnings, so that
stderr stays readable."""

from __future__ import annotations

import logging
import sys

OUR_LOGGERS = ("qa", "index", "api")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level_name: str, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, level_name.upper(), logging.INFO)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format=FORMAT, stream=sys.stderr)
    for ours in OUR_LOGGERS:
        logging.getLogger(ours).setLevel(level)
    # trafilatura warns "discarding data: None" for every page element it drops; our own message
    # says when a page has no main text
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    # pypdf warns about what it repairs in a damaged PDF ("EOF marker not found"), without the file's
    # name; qa index says in one line which file it could not read
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # "Loading weights: 100%" in every process otherwise
    except Exception:  # pragma: no cover - transformers missing or changed
        pass
