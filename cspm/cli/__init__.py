"""The `cspm` command line: parse, call the library, print. No logic lives here."""
