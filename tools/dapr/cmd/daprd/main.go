// Command daprd runs Dapr's own daprd entry point, built from the pinned module.
package main

import "github.com/dapr/dapr/cmd/daprd/app"

func main() {
	app.Run()
}
