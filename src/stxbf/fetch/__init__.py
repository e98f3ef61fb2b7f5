"""The fetch package gets transactions from the Stacks API: the HTTP client, the pacing, the
retries, and the window engines (v1 pages, v3 cursor walks). It never imports the store."""
