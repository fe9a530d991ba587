module github.com/secinfra/secinfra/sdk-go

go 1.22
