module github.com/secinfra/secinfra/benchmarks/load-go

go 1.22
