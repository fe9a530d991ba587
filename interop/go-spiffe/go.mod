module github.com/secinfra/secinfra/interop/go-spiffe

go 1.24.0

require (
	github.com/secinfra/secinfra/sdk-go v0.0.0
	github.com/spiffe/go-spiffe/v2 v2.9.0
)

// The SDK under test is the one in this repository.
replace github.com/secinfra/secinfra/sdk-go => ../../sdk-go
