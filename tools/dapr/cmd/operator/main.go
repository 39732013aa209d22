// Command operator runs Dapr's own operator entry point, built from the pinned module.
package main

import "github.com/dapr/dapr/cmd/operator/app"

func main() {
	app.Run()
}
