"""The registry protocol, one package for the client (`cspm`) and the server (`cspm-registry`): what both
must agree on byte for byte is written here once (issue 18). `layout`: the static layout's paths and the
one renderer of `config.json` and `names`; `publish_body`: the publish framing; `api_errors`: the write
API's error codes, their statuses and the client's hints."""
