"""The `clfbench` command (`clfbench.cli:main`, `python -m clfbench.cli`).

`parser.py` assembles the parser and runs `main`; one module per subcommand (`run`, `results`,
`report`, `recommend`, `predict`, `export`, `serve`, `loadtest`, `tasks`, `methods`, `demo`)
holds its flags (`add_parser`) and what it does (`run`); `common.py` what several share.
Turning `run`'s flags into RunSpecs is `clfbench.run.flags`.
"""

from clfbench.cli.parser import main

__all__ = ["main"]
