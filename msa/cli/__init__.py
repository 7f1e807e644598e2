"""The ``msa`` command: one front door to every command (``msa search``, ``msa prepare``, ...).

The top layer: it may import every other. ``msa.cli.commands`` names the commands and where
each lives, ``msa.cli.main`` dispatches to them (importing only the one asked for, so ``msa
--help`` answers at once), ``msa.cli.search`` is the search's command line (``python
tune_main.py`` is its alias) and ``msa.cli.reference`` renders every command's options for the
documentation site.
"""
