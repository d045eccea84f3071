"""Options several commands share, spelled once so `cspm run`, `cspm serve`, `lock`, `install` and the
queries say the same thing the same way."""

from __future__ import annotations

from typing import Annotated

import typer

OfflineOpt = Annotated[bool, typer.Option("--offline", help="use cached index files only; never the network")]
FrozenOpt = Annotated[bool, typer.Option("--frozen", help="fail instead of relocking when app.lock is out of date")]
RefreshOpt = Annotated[bool, typer.Option("--refresh", help="ask the registries for newer versions of a published "
                                                            "app instead of using the cached index")]
AllowCapabilitiesOpt = Annotated[bool, typer.Option(
    "--allow-capabilities", help="approve what a published app asks for (env vars, secrets, folders, hosts) "
                                 "without a prompt; remembered for its later versions")]
KvOpt = Annotated[str | None, typer.Option("--kv", metavar="URL", help="where kv memory lives: postgresql://… "
                                           "(shared by replicas) or sqlite:///PATH (default: $CSPM_KV_URL, else "
                                           "the data dir)")]
