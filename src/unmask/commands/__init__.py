"""Subcommands of ``unmask`` beyond ``explain``: each module has ``configure(parser)`` and ``run(args)``."""
