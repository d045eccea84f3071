module chainsocket.dev/sdk

go 1.24
