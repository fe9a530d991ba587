module github.com/secinfra/secinfra/benchmarks/mtls-go

go 1.22

require github.com/secinfra/secinfra/sdk-go v0.0.0

// The SDK measured is the one in this repository.
replace github.com/secinfra/secinfra/sdk-go => ../../sdk-go
