// Command scheduler runs Dapr's own scheduler entry point, built from the pinned module.
package main

import "github.com/dapr/dapr/cmd/scheduler/app"

func main() {
	app.Run()
}
