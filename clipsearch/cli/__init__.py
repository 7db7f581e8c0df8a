"""The `clipsearch` command line: `cli` is the click group, `main` the console script.

Each command module registers itself on the group when imported below.
"""

from clipsearch.cli import (  # noqa: F401
    demo_cmd,
    dupes_cmd,
    generate_cmd,
    index_cmds,
    search_cmd,
    serve_cmd,
    spark_cmds,
    status_cmd,
    tag_cmds,
    watch_cmd,
)
from clipsearch.cli.app import EXIT_INTERRUPTED, State, cli, main

__all__ = ["EXIT_INTERRUPTED", "State", "cli", "main"]
