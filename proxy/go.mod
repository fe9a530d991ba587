module github.com/secinfra/secinfra/proxy

go 1.24.0

require (
	github.com/secinfra/secinfra/sdk-go v0.0.0
	go.yaml.in/yaml/v3 v3.0.4
)

require github.com/coder/websocket v1.8.14

// The proxy is built on the SDK in this repository.
replace github.com/secinfra/secinfra/sdk-go => ../sdk-go
