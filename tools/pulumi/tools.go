//go:build tools

// Package tools pins the Pulumi CLI so `go mod tidy` keeps it.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
