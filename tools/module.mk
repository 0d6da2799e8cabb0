# tools: host programs (kvmesh-convert, kvmesh-eval, ...). Each has a directory here.
