"""The Go programs the stack runs or checks with, compiled from the modules under tools/ and
cached outside the repo by a digest of each module (go_tool): Dapr (dapr), helm and Jaeger.
Knows settings only, never the stack."""
