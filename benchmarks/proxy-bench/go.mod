module github.com/secinfra/secinfra/benchmarks/proxy-bench

go 1.24.0

require github.com/secinfra/secinfra/sdk-go v0.0.0

// The SDK (and, built from ../../proxy, the proxy) measured are this repository's.
replace github.com/secinfra/secinfra/sdk-go => ../../sdk-go
