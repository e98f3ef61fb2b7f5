"""Getting pages from the Stacks API: pacing, the HTTP client, retries, and the window engine."""
