module chainsocket.dev/kb

go 1.24

require chainsocket.dev/sdk v0.0.0

replace chainsocket.dev/sdk => ../sdk/go
