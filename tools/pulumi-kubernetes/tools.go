//go:build tools

// Package tools pins what the provider command needs so `go mod tidy` keeps it.
// The command itself cannot be imported here: it embeds files that only its
// go:generate step (generate.go, which uses codegen/schema) produces, so the
// build copies it into a temporary module next to this go.mod.
package tools

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
	_ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)
