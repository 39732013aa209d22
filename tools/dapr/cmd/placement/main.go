// Command placement runs Dapr's own placement entry point, built from the pinned module.
package main

import "github.com/dapr/dapr/cmd/placement/app"

func main() {
	app.Run()
}
