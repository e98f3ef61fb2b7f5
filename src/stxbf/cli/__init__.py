"""The `stxbf` command line: one module per command group, each thin over a library module."""
