"""The `stxbf` command line. Each command (or command group) has its own module, which parses
the options, calls one library function, and renders the result."""
