"""The registry protocol, one module for the client (`cspm`) and the server (`cspm-registry`): what both
must agree on byte for byte is written here once (issue 18). Today: the publish body."""
