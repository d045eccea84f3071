"""`cspm serve`: one planned app behind endpoints for many callers (OpenAI-compatible HTTP, MCP).
Nothing here is imported by `cspm run`: the server, its framework and the MCP SDK load only here."""
